package initramfs

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Modules is the part of a kernel's module tree an initramfs carries.
type Modules struct {
	// Files are paths relative to the release directory
	// (kernel/fs/ext4/ext4.ko), sorted.
	Files []string
	// Dep is a modules.dep covering exactly Files.
	Dep []byte
}

// SelectModules resolves names (hyphens and underscores are
// interchangeable, as for modprobe) against releaseDir/modules.dep and
// modules.builtin and returns the modules to carry with their
// dependencies. A built-in module is skipped; an unknown one is an error.
func SelectModules(releaseDir string, names []string) (*Modules, error) {
	depPath := filepath.Join(releaseDir, "modules.dep")
	raw, err := os.ReadFile(depPath)
	if err != nil {
		return nil, fmt.Errorf("read module dependencies: %w", err)
	}
	deps := map[string][]string{} // path -> dependency paths
	byName := map[string]string{} // canonical name -> path
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		mod = strings.TrimSpace(mod)
		deps[mod] = strings.Fields(rest)
		byName[ModuleName(mod)] = mod
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parse %s: %w", depPath, err)
	}
	builtin := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(releaseDir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			builtin[ModuleName(l)] = true
		}
	}

	want := map[string]bool{}
	var add func(string)
	add = func(p string) {
		if want[p] {
			return
		}
		want[p] = true
		for _, d := range deps[p] {
			add(d)
		}
	}
	for _, n := range names {
		n = canonical(n)
		switch p, ok := byName[n]; {
		case ok:
			add(p)
		case builtin[n]:
		default:
			return nil, fmt.Errorf("kernel module %s is neither in %s nor built in", n, depPath)
		}
	}

	set := &Modules{}
	for p := range want {
		set.Files = append(set.Files, p)
	}
	sort.Strings(set.Files)
	var dep bytes.Buffer
	for _, p := range set.Files {
		fmt.Fprintf(&dep, "%s:", p)
		for _, d := range deps[p] {
			fmt.Fprintf(&dep, " %s", d)
		}
		dep.WriteByte('\n')
	}
	set.Dep = dep.Bytes()
	return set, nil
}

// AddModules puts the modules of set under lib/modules/<release>/ in t,
// read from releaseDir, with their modules.dep.
func (t *Tree) AddModules(release, releaseDir string, set *Modules) error {
	rel := path.Join("lib/modules", release)
	for _, m := range set.Files {
		if err := t.File(path.Join(rel, m), filepath.Join(releaseDir, filepath.FromSlash(m)), 0o644); err != nil {
			return err
		}
	}
	t.Data(path.Join(rel, "modules.dep"), set.Dep, 0o644)
	return nil
}

// ModuleName turns kernel/fs/fat/vfat.ko(.xz) into its canonical name vfat.
func ModuleName(p string) string {
	b := path.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return canonical(b)
}

func canonical(name string) string { return strings.ReplaceAll(name, "-", "_") }
