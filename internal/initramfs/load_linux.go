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
