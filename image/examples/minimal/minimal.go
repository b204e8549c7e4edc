package minimal

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/twinroot/twinroot/internal/initramfs"
)

// Variant selects how the minimal system behaves at boot.
type Variant string

// The variants a test can build; see the package comment.
const (
	OK        Variant = "ok"
	Panic     Variant = "panic"
	Unhealthy Variant = "unhealthy"
	Hang      Variant = "hang"
)

// InitPackage is the import path of the init program BuildInitramfs builds.
const InitPackage = "github.com/twinroot/twinroot/image/examples/minimal/init"

// Options describe one build of the minimal system.
type Options struct {
	KernelDir   string  // output of fetch-kernel.sh: vmlinuz, version, lib/modules/<release>/
	Updater     string  // path to a static updater binary put at /bin/updater; "" = none
	Version     string  // e.g. "1.0.0"
	Variant     Variant // "" = OK
	Compression string  // squashfs compressor: "xz" (default) or "gzip"; GRUB 2.06 cannot read zstd squashfs

	// Init is a prebuilt static init binary; "" builds InitPackage with the go
	// tool (CGO_ENABLED=0) from the module this package's source lives in.
	Init string
}

func (o Options) normalized() (Options, error) {
	if o.Variant == "" {
		o.Variant = OK
	}
	switch o.Variant {
	case OK, Panic, Unhealthy, Hang:
	default:
		return o, fmt.Errorf("unknown variant %q (want %s, %s or %s)", o.Variant, OK, Panic, Unhealthy)
	}
	if o.Version == "" || strings.ContainsAny(o.Version, " \t\r\n/") {
		return o, fmt.Errorf("version %q must be a non-empty word without spaces or slashes", o.Version)
	}
	if o.Compression == "" {
		o.Compression = "xz"
	}
	if o.Compression != "xz" && o.Compression != "gzip" {
		return o, fmt.Errorf("squashfs compression %q: GRUB 2.06 reads only xz or gzip", o.Compression)
	}
	return o, nil
}

// BuildInitramfs writes a newc cpio (gzip-compressed) holding /init,
// /bin/updater, /etc/twinroot/{version,variant}, the needed modules with a
// modules.dep for them, and the dev nodes console and null. Reproducible:
// the same inputs give the same bytes (fixed times and owners, sorted names).
func BuildInitramfs(ctx context.Context, opts Options, out string) error {
	opts, err := opts.normalized()
	if err != nil {
		return fmt.Errorf("build initramfs %s: %w", out, err)
	}
	k, err := initramfs.OpenKernel(opts.KernelDir)
	if err != nil {
		return err
	}
	mods, err := initramfs.SelectModules(k.ReleaseDir, modules)
	if err != nil {
		return fmt.Errorf("build initramfs %s: %w", out, err)
	}

	initBin := opts.Init
	if initBin == "" {
		tmp, err := os.MkdirTemp("", "twinroot-init-")
		if err != nil {
			return fmt.Errorf("build initramfs %s: %w", out, err)
		}
		defer os.RemoveAll(tmp)
		initBin = filepath.Join(tmp, "init")
		if err := BuildInit(ctx, initBin); err != nil {
			return fmt.Errorf("build initramfs %s: %w", out, err)
		}
	}

	tree := initramfs.NewTree()
	for _, d := range []string{"bin", "sbin", "etc", "proc", "sys", "run", "mnt", "root", "usr"} {
		tree.Dir(d, 0o755)
	}
	tree.Dir("tmp", 0o1777)
	tree.Dev("dev/console", 0o600, 5, 1)
	tree.Dev("dev/null", 0o666, 1, 3)
	if err := tree.File("init", initBin, 0o755); err != nil {
		return fmt.Errorf("build initramfs %s: %w", out, err)
	}
	// An updater that reboots through the usual commands finds them.
	tree.Symlink("sbin/reboot", "/init")
	tree.Symlink("sbin/poweroff", "/init")
	if opts.Updater != "" {
		if err := tree.File("bin/updater", opts.Updater, 0o755); err != nil {
			return fmt.Errorf("build initramfs %s: updater: %w", out, err)
		}
	}
	tree.Data("etc/twinroot/version", []byte(opts.Version+"\n"), 0o644)
	tree.Data("etc/twinroot/variant", []byte(string(opts.Variant)+"\n"), 0o644)
	if err := tree.AddModules(k.Release, k.ReleaseDir, mods); err != nil {
		return fmt.Errorf("build initramfs %s: %w", out, err)
	}
	b, err := tree.Gzip()
	if err != nil {
		return fmt.Errorf("build initramfs %s: %w", out, err)
	}
	return writeFileAtomic(out, b)
}

// BuildInit builds the init program (InitPackage) as a static binary at out.
// The flags make the binary reproducible: no paths, VCS stamp or build ID.
func BuildInit(ctx context.Context, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false",
		"-ldflags=-s -w -buildid=", "-o", out, InitPackage)
	cmd.Dir = sourceDir()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w: %s", InitPackage, err, bytes.TrimSpace(b))
	}
	return nil
}

// sourceDir is this package's source directory when it exists (tests, make),
// so the go tool finds the module from wherever the caller runs; otherwise
// the current directory.
func sourceDir() string {
	_, file, _, ok := runtime.Caller(0)
	if ok {
		if st, err := os.Stat(filepath.Dir(file)); err == nil && st.IsDir() {
			return filepath.Dir(file)
		}
	}
	return ""
}

// Build writes the slot image: a reproducible squashfs of the root
// BuildRoot makes, holding /boot/vmlinuz, /boot/initrd.img and
// /etc/twinroot/version.
func Build(ctx context.Context, opts Options, out string) error {
	root, err := os.MkdirTemp("", "twinroot-minimal-root-")
	if err != nil {
		return fmt.Errorf("build slot image %s: %w", out, err)
	}
	defer os.RemoveAll(root)
	if err := BuildRoot(ctx, opts, root); err != nil {
		return fmt.Errorf("build slot image %s: %w", out, err)
	}
	opts, _ = opts.normalized() // BuildRoot checked them

	tmp := out + ".tmp"
	os.Remove(tmp)
	cmd := exec.CommandContext(ctx, "mksquashfs", root, tmp,
		"-noappend", "-all-root", "-no-xattrs", "-mkfs-time", "0", "-all-time", "0",
		"-comp", opts.Compression, "-no-progress", "-quiet")
	if b, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("build slot image %s: mksquashfs: %w: %s", out, err, bytes.TrimSpace(b))
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("build slot image %s: %w", out, err)
	}
	return nil
}

// BuildRoot writes the root of the minimal system into dir (created if
// missing, and expected empty): /boot/vmlinuz, /boot/initrd.img and
// /etc/twinroot/version, every directory 0755 and every file 0644. It is
// what Build squashes, and what a release build (image.Build with its
// Rootfs, which adds the trusted keys and the serial) takes as the root.
func BuildRoot(ctx context.Context, opts Options, dir string) error {
	opts, err := opts.normalized()
	if err != nil {
		return fmt.Errorf("build root %s: %w", dir, err)
	}
	k, err := initramfs.OpenKernel(opts.KernelDir)
	if err != nil {
		return err
	}
	for _, d := range []string{"", "boot", "etc", "etc/twinroot"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("build root %s: %w", dir, err)
		}
	}
	vmlinuz, err := os.ReadFile(k.Vmlinuz)
	if err != nil {
		return fmt.Errorf("build root %s: %w", dir, err)
	}
	files := map[string][]byte{
		"boot/vmlinuz":         vmlinuz,
		"etc/twinroot/version": []byte(opts.Version + "\n"),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return fmt.Errorf("build root %s: %w", dir, err)
		}
	}
	if err := BuildInitramfs(ctx, opts, filepath.Join(dir, "boot", "initrd.img")); err != nil {
		return err
	}
	// A temporary directory is 0700 and the umask shapes the rest: fix
	// every mode, since mksquashfs stores them.
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := fs.FileMode(0o644)
		if d.IsDir() {
			mode = 0o755
		}
		return os.Chmod(p, mode)
	})
	if err != nil {
		return fmt.Errorf("build root %s: %w", dir, err)
	}
	return nil
}

func writeFileAtomic(name string, b []byte) error {
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(tmp, name); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}
