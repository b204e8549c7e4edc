package minimal

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

// modules are the kernel modules the minimal system loads at boot, by name
// (hyphens and underscores are interchangeable, as for modprobe). Their
// dependencies from modules.dep come along. Debian's kernel builds all of them
// as modules; one that the kernel has built in is skipped.
var modules = []string{
	// Disks: virtio, SATA/IDE, NVMe, CD-ROM (installer ISO), USB sticks.
	"virtio_pci", "virtio_blk", "virtio_scsi", "ahci", "ata_piix", "sd_mod",
	"sr_mod", "cdrom", "nvme", "xhci_pci", "ehci_pci", "uhci_hcd", "usb_storage",
	// Filesystems: the data partition, the ESP, slot images, the ISO.
	// ext4 asks the crypto API for crc32c at mount time, through a modprobe
	// helper the initramfs does not have, so the implementations are loaded up front.
	"ext4", "crc32c_generic", "crc32c_intel", "vfat", "nls_cp437", "nls_ascii",
	"nls_utf8", "squashfs", "isofs", "loop", "overlay",
	// Network (QEMU's virtio-net and default e1000), entropy, the watchdog.
	"virtio_net", "e1000", "virtio_rng", "i6300esb",
}

// moduleSet is the part of a kernel's module tree an initramfs carries.
type moduleSet struct {
	// files are paths relative to the release directory (kernel/fs/ext4/ext4.ko), sorted.
	files []string
	// dep is a modules.dep covering exactly files.
	dep []byte
}

// selectModules resolves names against releaseDir/modules.dep and
// modules.builtin and returns the modules to carry with their dependencies.
func selectModules(releaseDir string, names []string) (*moduleSet, error) {
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
		byName[moduleName(mod)] = mod
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parse %s: %w", depPath, err)
	}
	builtin := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(releaseDir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			builtin[moduleName(l)] = true
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

	set := &moduleSet{}
	for p := range want {
		set.files = append(set.files, p)
	}
	sort.Strings(set.files)
	var dep bytes.Buffer
	for _, p := range set.files {
		fmt.Fprintf(&dep, "%s:", p)
		for _, d := range deps[p] {
			fmt.Fprintf(&dep, " %s", d)
		}
		dep.WriteByte('\n')
	}
	set.dep = dep.Bytes()
	return set, nil
}

// moduleName turns kernel/fs/fat/vfat.ko(.xz) into its canonical name vfat.
func moduleName(p string) string {
	b := path.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return canonical(b)
}

func canonical(name string) string { return strings.ReplaceAll(name, "-", "_") }
