package grub

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Names of the image files in the directory BuildImages writes.
const (
	BootImgFile = "boot.img"
	CoreImgFile = "core.img"
	EFIImgFile  = "BOOTX64.EFI"
)

// Where GRUB lives on the ESP.
const (
	// PrefixDir is GRUB's $prefix on the ESP: grub.cfg and grubenv go here.
	PrefixDir = "/boot/grub"
	// EFIBootFile is the removable-media path every UEFI firmware boots.
	EFIBootFile = "/EFI/BOOT/BOOTX64.EFI"
	// biosPrefix names the ESP by partition only: GRUB's kernel puts the BIOS
	// boot drive in front of ",gpt2", so core.img needs no disk UUID and works
	// on any disk it is written to (grub-install embeds the same form).
	biosPrefix = "(,gpt2)" + PrefixDir
)

// Images are the GRUB binaries installed onto a disk.
type Images struct{ BootImg, CoreImg, EFI []byte }

// Builder runs grub-mkimage. The zero value uses grub-mkimage from $PATH and
// the modules Debian installs under /usr/lib/grub.
type Builder struct {
	Mkimage string // grub-mkimage binary; "" means look it up in $PATH
	LibDir  string // holds i386-pc/ and x86_64-efi/; "" means /usr/lib/grub
}

// BuildImages writes boot.img, core.img and BOOTX64.EFI into dir with the
// default Builder.
func BuildImages(ctx context.Context, dir string) error {
	return Builder{}.Build(ctx, dir)
}

// modules returns the modules built into the image for platform. Everything
// a twinroot grub.cfg may use is built in: the ESP holds no module directory,
// so `insmod` can never fail at boot and the ESP never needs a GRUB upgrade
// that matches the binaries.
func modules(platform string) []string {
	m := []string{
		// disks, partitions, file systems and decompressors of slot images
		"part_gpt", "part_msdos", "fat", "squash4", "xzio", "gzio",
		// the script and the boot-state environment
		"normal", "configfile", "echo", "test", "true", "regexp", "eval",
		"loadenv", "search", "search_fs_uuid", "search_fs_file", "search_label",
		"read", "probe", "cat", "ls", "minicmd",
		// console, kernel, power
		"serial", "terminal", "linux", "sleep", "reboot", "halt",
	}
	switch platform {
	case "i386-pc":
		m = append(m, "biosdisk")
	case "x86_64-efi":
		// efidisk is part of the EFI kernel; video for the kernel's efifb
		m = append(m, "efi_gop", "efi_uga")
	}
	return m
}

// Build runs grub-mkimage for BIOS and UEFI and copies boot.img into dir.
// grub-mkimage embeds no time or path, so the same GRUB package always gives
// the same bytes.
func (b Builder) Build(ctx context.Context, dir string) error {
	mkimage, lib := b.Mkimage, b.LibDir
	if mkimage == "" {
		p, err := exec.LookPath("grub-mkimage")
		if err != nil {
			return fmt.Errorf("build GRUB images: grub-mkimage not found (Debian: apt-get install grub2-common grub-pc-bin grub-efi-amd64-bin): %w", err)
		}
		mkimage = p
	}
	if lib == "" {
		lib = "/usr/lib/grub"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("build GRUB images: %w", err)
	}
	boot, err := os.ReadFile(filepath.Join(lib, "i386-pc", BootImgFile))
	if err != nil {
		return fmt.Errorf("build GRUB images: read boot.img (Debian: grub-pc-bin): %w", err)
	}
	if len(boot) != sectorSize {
		return fmt.Errorf("build GRUB images: %s is %d bytes, want %d", filepath.Join(lib, "i386-pc", BootImgFile), len(boot), sectorSize)
	}
	if err := os.WriteFile(filepath.Join(dir, BootImgFile), boot, 0o644); err != nil {
		return fmt.Errorf("build GRUB images: %w", err)
	}
	for _, t := range []struct{ platform, prefix, out string }{
		{"i386-pc", biosPrefix, CoreImgFile},
		{"x86_64-efi", PrefixDir, EFIImgFile},
	} {
		args := []string{
			"-O", t.platform,
			"-d", filepath.Join(lib, t.platform),
			"-p", t.prefix,
			"-o", filepath.Join(dir, t.out),
		}
		args = append(args, modules(t.platform)...)
		cmd := exec.CommandContext(ctx, mkimage, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build GRUB images: grub-mkimage -O %s: %w: %s", t.platform, err, strings.TrimSpace(stderr.String()))
		}
	}
	return nil
}

// LoadImages reads the images BuildImages wrote into dir.
func LoadImages(dir string) (Images, error) {
	var img Images
	for _, f := range []struct {
		name string
		dst  *[]byte
	}{
		{BootImgFile, &img.BootImg},
		{CoreImgFile, &img.CoreImg},
		{EFIImgFile, &img.EFI},
	} {
		b, err := os.ReadFile(filepath.Join(dir, f.name))
		if errors.Is(err, fs.ErrNotExist) {
			return Images{}, fmt.Errorf("GRUB image %s is missing: run `make grub`", filepath.Join(dir, f.name))
		}
		if err != nil {
			return Images{}, fmt.Errorf("read GRUB image: %w", err)
		}
		*f.dst = b
	}
	if len(img.BootImg) != sectorSize {
		return Images{}, fmt.Errorf("GRUB image %s is %d bytes, want %d: run `make grub`", filepath.Join(dir, BootImgFile), len(img.BootImg), sectorSize)
	}
	return img, nil
}
