package iso

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/twinroot/twinroot/internal/config"
	"github.com/twinroot/twinroot/internal/grub"
	"github.com/twinroot/twinroot/internal/initramfs"
	"github.com/twinroot/twinroot/internal/refusal"
	"github.com/twinroot/twinroot/internal/release"
)

// ErrMissingInput is an input Build cannot find; its message names the
// make target that prepares it.
var ErrMissingInput = refusal.New("missing input")

// Options of an ISO build.
type Options struct {
	Release   string // build output directory of `updater build`, signed by `updater sign`
	Config    string // device.yaml seeded onto the data partition; "" for none
	Out       string // the ISO file
	KernelDir string // vmlinuz, version, lib/modules/<release>/ (make kernel)
	GrubDir   string // boot.img, core.img, BOOTX64.EFI for the target disk (make grub)
	Installer string // static installer binary, the initramfs's init
	// GrubLib holds GRUB's i386-pc/ and x86_64-efi/ directories; default
	// DefaultGrubLib.
	GrubLib string
	// KernelArgs are added to the installer's kernel command line, e.g.
	// "twinroot.yes=1" for an unattended install.
	KernelArgs string
	// Timeout is how long GRUB's menu waits, in seconds; default 3.
	Timeout int
}

// Result describes a built ISO.
type Result struct {
	Out      string        `json:"out"`
	Size     int64         `json:"size"`
	Version  string        `json:"version"`
	Serial   uint64        `json:"serial"`
	ID       string        `json:"id"`
	VolumeID string        `json:"volume_id"`
	Initrd   int64         `json:"initrd_size"`
	Duration time.Duration `json:"duration_ns"`
}

// installerModules are the kernel modules the installer loads: disks
// (virtio, SATA/IDE, NVMe, USB sticks) and CD drives with ISO 9660.
var installerModules = []string{
	"virtio_pci", "virtio_blk", "virtio_scsi", "ahci", "ata_piix", "sd_mod",
	"sr_mod", "cdrom", "nvme", "xhci_pci", "ehci_pci", "uhci_hcd", "usb_storage",
	"isofs",
}

// Build checks every input, then writes the ISO: see the package comment
// for its layout. It refuses a release whose manifest is unsigned or not
// signed by a key the image trusts, and an image that does not match it.
func Build(ctx context.Context, o Options) (Result, error) {
	start := time.Now()
	if o.GrubLib == "" {
		o.GrubLib = DefaultGrubLib
	}
	if o.Timeout == 0 {
		o.Timeout = 3
	}
	if strings.ContainsAny(o.KernelArgs, "\n\"'$;{}\\") {
		return Result{}, fmt.Errorf("kernel arguments %q contain characters grub.cfg cannot carry", o.KernelArgs)
	}
	b, _, err := release.OpenDir(ctx, o.Release)
	if err != nil {
		return Result{}, err
	}
	if err := release.CheckDir(ctx, o.Release, b.Manifest); err != nil {
		return Result{}, fmt.Errorf("release %s: %w", o.Release, err)
	}
	if o.Config != "" {
		if _, err := config.Load(o.Config); err != nil {
			return Result{}, err
		}
	}
	k, err := checkInputs(o)
	if err != nil {
		return Result{}, err
	}

	sum := sha256.Sum256(b.Signed)
	id := hex.EncodeToString(sum[:8])
	d := cfgData{ID: id, VolumeID: "TWINROOT_" + strings.ToUpper(id[:8]), Version: b.Manifest.Version, Args: o.KernelArgs, Timeout: o.Timeout}
	// Every date in the ISO and the FAT image is the manifest's creation
	// time, so the same inputs give the same bytes (xorriso and mtools
	// honour SOURCE_DATE_EPOCH; xorriso derives the GPT GUIDs from it too).
	env := []string{"SOURCE_DATE_EPOCH=" + strconv.FormatInt(b.Manifest.Created.Unix(), 10), "TZ=UTC"}

	stage, err := os.MkdirTemp("", "twinroot-iso-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(stage)
	eltorito, efiImg, err := buildGrub(ctx, o.GrubLib, stage, d, env)
	if err != nil {
		return Result{}, fmt.Errorf("build the ISO's GRUB: %w", err)
	}
	initrd := filepath.Join(stage, "initrd.img")
	if err := buildInitramfs(k, o.Installer, initrd); err != nil {
		return Result{}, fmt.Errorf("build the installer initramfs: %w", err)
	}
	cfg := filepath.Join(stage, "grub.cfg")
	if err := os.WriteFile(cfg, render(isoCfg, d), 0o644); err != nil {
		return Result{}, err
	}
	marker := filepath.Join(stage, "medium")
	if err := os.WriteFile(marker, []byte(id+"\n"), 0o644); err != nil {
		return Result{}, err
	}

	graft := []string{
		"/boot/grub/i386-pc/eltorito.img=" + eltorito,
		"/boot/grub/efi.img=" + efiImg,
		"/boot/grub/grub.cfg=" + cfg,
		"/boot/vmlinuz=" + k.Vmlinuz,
		"/boot/initrd.img=" + initrd,
		"/twinroot/medium-" + id + "=" + marker,
		"/twinroot/release/" + release.SlotFile + "=" + filepath.Join(o.Release, release.SlotFile),
		"/twinroot/release/" + release.ManifestFile + "=" + filepath.Join(o.Release, release.ManifestFile),
		"/twinroot/release/" + release.IndexFile + "=" + filepath.Join(o.Release, release.IndexFile),
		"/twinroot/grub/" + grub.BootImgFile + "=" + filepath.Join(o.GrubDir, grub.BootImgFile),
		"/twinroot/grub/" + grub.CoreImgFile + "=" + filepath.Join(o.GrubDir, grub.CoreImgFile),
		"/twinroot/grub/" + grub.EFIImgFile + "=" + filepath.Join(o.GrubDir, grub.EFIImgFile),
	}
	if o.Config != "" {
		graft = append(graft, "/twinroot/device.yaml="+o.Config)
	}
	tmp := o.Out + ".tmp"
	os.Remove(tmp)
	args := []string{"-as", "mkisofs", "-o", tmp, "-quiet", "-r", "-J", "-V", d.VolumeID,
		// BIOS: El Torito, and the hybrid MBR for a stick.
		"-b", "boot/grub/i386-pc/eltorito.img", "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table",
		"--grub2-boot-info", "--grub2-mbr", filepath.Join(o.GrubLib, "i386-pc", "boot_hybrid.img"),
		// UEFI: El Torito from a CD, GPT partition 2 from a stick.
		"-eltorito-alt-boot", "-e", "boot/grub/efi.img", "-no-emul-boot",
		"-append_partition", "2", "0xef", efiImg, "-appended_part_as_gpt",
		"-graft-points"}
	args = append(args, graft...)
	// SOURCE_DATE_EPOCH keeps the files' own mtimes: give every file and
	// directory the one date instead.
	args = append(args, "--", "-volume_date", "all_file_dates", "="+strconv.FormatInt(b.Manifest.Created.Unix(), 10))
	if err := run(ctx, env, "xorriso", args...); err != nil {
		os.Remove(tmp)
		return Result{}, fmt.Errorf("write %s: %w", o.Out, err)
	}
	if err := os.Rename(tmp, o.Out); err != nil {
		os.Remove(tmp)
		return Result{}, err
	}
	fi, err := os.Stat(o.Out)
	if err != nil {
		return Result{}, err
	}
	ri, _ := os.Stat(initrd)
	return Result{Out: o.Out, Size: fi.Size(), Version: b.Manifest.Version, Serial: b.Manifest.Serial, ID: id,
		VolumeID: d.VolumeID, Initrd: ri.Size(), Duration: time.Since(start)}, nil
}

// checkInputs finds the kernel, the GRUB images and tools, the installer
// and mke2fs, and names the make target for whatever is missing.
func checkInputs(o Options) (*initramfs.Kernel, error) {
	missing := func(what, target string) error {
		return fmt.Errorf("%w: %s (run `make %s`)", ErrMissingInput, what, target)
	}
	k, err := initramfs.OpenKernel(o.KernelDir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMissingInput, err)
	}
	if _, err := grub.LoadImages(o.GrubDir); err != nil {
		return nil, missing("GRUB images in "+o.GrubDir, "grub")
	}
	for _, f := range []string{"i386-pc/boot_hybrid.img", "i386-pc/cdboot.img", "i386-pc/iso9660.mod", "x86_64-efi/iso9660.mod"} {
		if _, err := os.Stat(filepath.Join(o.GrubLib, f)); err != nil {
			return nil, missing("GRUB's "+filepath.Join(o.GrubLib, f)+" (grub-pc-bin, grub-efi-amd64-bin)", "deps")
		}
	}
	for _, tool := range []string{"xorriso", "grub-mkimage", "mkfs.fat", "mmd", "mcopy", "mke2fs"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, missing(tool+" (Debian: xorriso, grub2-common, dosfstools, mtools, e2fsprogs)", "deps")
		}
	}
	if err := checkStatic(o.Installer); err != nil {
		return nil, err
	}
	return k, nil
}

// checkStatic refuses an installer binary that is not statically linked:
// the initramfs has no C library for it.
func checkStatic(path string) error {
	if path == "" {
		return fmt.Errorf("%w: no installer binary for the initramfs (run `make bins`)", ErrMissingInput)
	}
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%w: installer binary %s: %v (run `make bins`)", ErrMissingInput, path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%w: installer binary %s is dynamically linked; build it with CGO_ENABLED=0 (run `make bins`)", ErrMissingInput, path)
		}
	}
	return nil
}

// buildInitramfs writes the installer's initramfs: see the package comment.
func buildInitramfs(k *initramfs.Kernel, installer, out string) error {
	mods, err := initramfs.SelectModules(k.ReleaseDir, installerModules)
	if err != nil {
		return err
	}
	t := initramfs.NewTree()
	for _, d := range []string{"bin", "sbin", "etc", "proc", "sys", "run", "root", "dev"} {
		t.Dir(d, 0o755)
	}
	t.Dir("tmp", 0o1777)
	t.Dev("dev/console", 0o600, 5, 1)
	t.Dev("dev/null", 0o666, 1, 3)
	if err := t.File("init", installer, 0o755); err != nil {
		return err
	}
	t.Symlink("bin/installer", "/init")
	mke2fs, err := exec.LookPath("mke2fs")
	if err != nil {
		return err
	}
	if err := t.AddProgram("sbin/mke2fs", mke2fs); err != nil {
		return err
	}
	t.Symlink("sbin/mkfs.ext4", "mke2fs")
	if _, err := os.Stat("/etc/mke2fs.conf"); err == nil {
		if err := t.File("etc/mke2fs.conf", "/etc/mke2fs.conf", 0o644); err != nil {
			return err
		}
	}
	if err := t.AddModules(k.Release, k.ReleaseDir, mods); err != nil {
		return err
	}
	b, err := t.Gzip()
	if err != nil {
		return err
	}
	return os.WriteFile(out, b, 0o644)
}
