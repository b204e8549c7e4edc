package initramfs

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/u-root/u-root/pkg/kmodule"
	"golang.org/x/sys/unix"
)

// MountKernelFilesystems is what an initramfs's init mounts first: proc,
// sysfs, devtmpfs on /dev, and tmpfs on /tmp and /run. It mounts what it
// can and returns an error for each one it cannot.
func MountKernelFilesystems() []error {
	var errs []error
	for _, m := range []struct{ dev, dir, fstype, data string }{
		{"proc", "/proc", "proc", ""},
		{"sysfs", "/sys", "sysfs", ""},
		{"devtmpfs", "/dev", "devtmpfs", "mode=0755"},
		{"tmpfs", "/tmp", "tmpfs", "mode=1777"},
		{"tmpfs", "/run", "tmpfs", "mode=0755"},
	} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := unix.Mount(m.dev, m.dir, m.fstype, unix.MS_NOSUID, m.data); err != nil {
			errs = append(errs, fmt.Errorf("mount %s on %s: %w", m.fstype, m.dir, err))
		}
	}
	return errs
}

// LoadModules is the boot-time side of Modules: run by an initramfs's init,
// it loads every module the initramfs carries (its modules.dep lists
// exactly those) with their dependencies, in parallel. The errors are worth
// showing, not fatal: a module for hardware the machine lacks fails.
func LoadModules() []error {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return []error{fmt.Errorf("uname: %w", err)}
	}
	release := unix.ByteSliceToString(uts.Release[:])
	f, err := os.Open(filepath.Join("/lib/modules", release, "modules.dep"))
	if err != nil {
		return []error{fmt.Errorf("modules: %w", err)}
	}
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if mod, _, ok := strings.Cut(sc.Text(), ":"); ok {
			names = append(names, strings.TrimSuffix(filepath.Base(mod), ".ko"))
		}
	}
	f.Close()
	p, err := kmodule.NewProber(kmodule.ProbeOpts{KVer: release})
	if err != nil {
		return []error{fmt.Errorf("modules: %w", err)}
	}
	// The USB host drivers want EHCI before its companions (UHCI), so that
	// one goes in a first wave; everything else loads in parallel.
	var first, rest []string
	for _, n := range names {
		if strings.HasPrefix(n, "ehci") {
			first = append(first, n)
		} else {
			rest = append(rest, n)
		}
	}
	var (
		mu   sync.Mutex
		errs []error
	)
	for _, wave := range [][]string{first, rest} {
		var wg sync.WaitGroup
		for _, n := range wave {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// ENODEV: no such hardware here (crc32c_intel on a CPU
				// without SSE4.2, as QEMU's default model under TCG).
				if err := p.Probe(n, ""); err != nil && !errors.Is(err, unix.ENODEV) {
					mu.Lock()
					errs = append(errs, fmt.Errorf("module %s: %w", n, err))
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	return errs
}
