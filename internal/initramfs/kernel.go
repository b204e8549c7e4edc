package initramfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Kernel is a kernel directory as `make kernel` prepares it: vmlinuz, a
// file named version holding the kernel release, and lib/modules/<release>/
// with its modules.dep.
type Kernel struct {
	Vmlinuz    string
	Release    string
	ReleaseDir string // lib/modules/<release>
}

// OpenKernel checks that dir is a whole kernel directory; its error names
// the part missing and `make kernel`.
func OpenKernel(dir string) (*Kernel, error) {
	if dir == "" {
		return nil, errors.New("no kernel directory given: run `make kernel` and pass build/kernel")
	}
	k := &Kernel{Vmlinuz: filepath.Join(dir, "vmlinuz")}
	if _, err := os.Stat(k.Vmlinuz); err != nil {
		return nil, fmt.Errorf("kernel directory %s has no vmlinuz: run `make kernel`", dir)
	}
	v, err := os.ReadFile(filepath.Join(dir, "version"))
	if err != nil {
		return nil, fmt.Errorf("kernel directory %s has no version file: run `make kernel`", dir)
	}
	k.Release = strings.TrimSpace(string(v))
	k.ReleaseDir = filepath.Join(dir, "lib", "modules", k.Release)
	if _, err := os.Stat(filepath.Join(k.ReleaseDir, "modules.dep")); err != nil {
		return nil, fmt.Errorf("kernel directory %s has no lib/modules/%s/modules.dep: run `make kernel`", dir, k.Release)
	}
	return k, nil
}
