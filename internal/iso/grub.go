package iso

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
)

// DefaultGrubLib is where Debian's grub-pc-bin and grub-efi-amd64-bin put
// GRUB's modules and boot images.
const DefaultGrubLib = "/usr/lib/grub"

// grubModules are built into both ISO GRUB images: the medium carries no
// module directory, so nothing is loaded at boot.
var grubModules = []string{
	"iso9660", "part_gpt", "part_msdos", "fat",
	"normal", "configfile", "echo", "test", "true", "search", "search_fs_file",
	"linux", "serial", "terminal", "sleep", "reboot", "halt", "minicmd", "ls", "cat",
}

// earlyCfg is embedded in both GRUB images: whatever the firmware calls the
// drive (cd0, hd0 for a stick, the El Torito FAT image under UEFI), GRUB
// looks for the medium's marker file and reads grub.cfg beside it.
const earlyCfg = `search --no-floppy --set=root --file /twinroot/medium-{{.ID}}
set prefix=($root)/boot/grub
configfile $prefix/grub.cfg
`

var isoCfg = template.Must(template.New("grub.cfg").Parse(`# twinroot installer ISO
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout={{.Timeout}}
set default=0
menuentry "Install twinroot {{.Version}} (erases the target disk)" {
  echo "twinroot: loading the installer for {{.Version}}"
  linux /boot/vmlinuz console=tty0 console=ttyS0,115200 twinroot.medium={{.VolumeID}}{{if .Args}} {{.Args}}{{end}}
  initrd /boot/initrd.img
}
menuentry "Power off" {
  halt
}
`))

type cfgData struct {
	ID, VolumeID, Version, Args string
	Timeout                     int
}

func render(t *template.Template, d cfgData) []byte {
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		panic(err) // the templates are constants
	}
	return b.Bytes()
}

// buildGrub writes eltorito.img (BIOS) and efi.img (a FAT image holding
// /EFI/BOOT/BOOTX64.EFI) into dir. The FAT image is made with mkfs.fat and
// mtools, which honour SOURCE_DATE_EPOCH (env) for reproducible bytes: a
// FAT32 from go-diskfs is out of spec below 33 MiB (too few clusters),
// which firmware reads as FAT12 or FAT16.
func buildGrub(ctx context.Context, lib, dir string, d cfgData, env []string) (eltorito, efiImg string, err error) {
	early := filepath.Join(dir, "early.cfg")
	if err := os.WriteFile(early, render(template.Must(template.New("").Parse(earlyCfg)), d), 0o644); err != nil {
		return "", "", err
	}
	eltorito = filepath.Join(dir, "eltorito.img")
	efi := filepath.Join(dir, "BOOTX64.EFI")
	for _, t := range []struct{ format, platform, out string }{
		{"i386-pc-eltorito", "i386-pc", eltorito},
		{"x86_64-efi", "x86_64-efi", efi},
	} {
		mods := append([]string{}, grubModules...)
		if t.platform == "i386-pc" {
			mods = append(mods, "biosdisk")
		} else {
			mods = append(mods, "efi_gop", "efi_uga")
		}
		args := append([]string{"-O", t.format, "-d", filepath.Join(lib, t.platform), "-p", "/boot/grub", "-c", early, "-o", t.out}, mods...)
		if err := run(ctx, nil, "grub-mkimage", args...); err != nil {
			return "", "", err
		}
	}
	fi, err := os.Stat(efi)
	if err != nil {
		return "", "", err
	}
	efiImg = filepath.Join(dir, "efi.img")
	// Room for BOOTX64.EFI plus the FAT's own sectors, in KiB.
	kib := (fi.Size()/1024 + 256 + 63) / 64 * 64
	steps := [][]string{
		{"mkfs.fat", "-C", "--invariant", "-n", "TWINROOTEFI", efiImg, strconv.FormatInt(kib, 10)},
		{"mmd", "-i", efiImg, "::/EFI", "::/EFI/BOOT"},
		{"mcopy", "-i", efiImg, efi, "::/EFI/BOOT/BOOTX64.EFI"},
	}
	for _, s := range steps {
		if err := run(ctx, env, s[0], s[1:]...); err != nil {
			return "", "", err
		}
	}
	return eltorito, efiImg, nil
}

func run(ctx context.Context, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(out.String()))
	}
	return nil
}
