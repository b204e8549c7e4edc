package initramfs

import (
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// LibDirs are where Debian keeps the shared libraries of amd64 programs.
var LibDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/lib", "/usr/lib"}

// AddProgram puts the host program src at name in t with every shared
// library it needs (and its dynamic loader) at the same path as on the
// host, found in LibDirs, as ldd would resolve them.
func (t *Tree) AddProgram(name, src string) error {
	if err := t.File(name, src, 0o755); err != nil {
		return err
	}
	seen := map[string]bool{}
	return t.addLibs(src, seen)
}

func (t *Tree) addLibs(src string, seen map[string]bool) error {
	f, err := elf.Open(src)
	if err != nil {
		return fmt.Errorf("read %s: %w", src, err)
	}
	defer f.Close()
	var need []string
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			return fmt.Errorf("read the interpreter of %s: %w", src, err)
		}
		interp := strings.TrimRight(string(b), "\x00")
		if !seen[interp] {
			seen[interp] = true
			if err := t.addHostFile(interp); err != nil {
				return err
			}
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return fmt.Errorf("read the libraries of %s: %w", src, err)
	}
	need = append(need, libs...)
	for _, lib := range need {
		if seen[lib] {
			continue
		}
		seen[lib] = true
		p, err := findLib(lib)
		if err != nil {
			return fmt.Errorf("%s needs %s: %w", src, lib, err)
		}
		if err := t.addHostFile(p); err != nil {
			return err
		}
		if err := t.addLibs(p, seen); err != nil {
			return err
		}
	}
	return nil
}

// addHostFile adds the host file p at its own path, following symlinks
// for the content.
func (t *Tree) addHostFile(p string) error {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", p, err)
	}
	return t.File(strings.TrimPrefix(filepath.Clean(p), "/"), real, 0o755)
}

func findLib(name string) (string, error) {
	for _, d := range LibDirs {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("not found in %s", strings.Join(LibDirs, ", "))
}
