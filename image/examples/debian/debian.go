package debian

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Suite and Mirror that debootstrap installs from.
const (
	Suite  = "trixie"
	Mirror = "http://deb.debian.org/debian"
)

// Packages debootstrap installs on top of its minbase variant. netavark
// provides podman's container-network-stack, so containernetworking-plugins
// (54 MB, and iptables) is not needed; dbus is systemd-resolved's system bus.
var Packages = []string{
	"systemd", "systemd-sysv", "systemd-resolved", "udev", "dbus",
	"podman", "crun", "netavark", "aardvark-dns", "passt", "nftables",
	"ca-certificates", "linux-image-amd64", "initramfs-tools", "busybox",
	"iproute2", "e2fsprogs", "procps",
}

// Updater is where Assemble puts the updater binary in the root.
const Updater = "/usr/bin/updater"

//go:embed base.sh
var baseScript []byte

//go:embed initramfs/twinroot-data
var initramfsScript []byte

//go:embed all:rootfs
var rootfsTree embed.FS

// links are the symbolic links Assemble adds with the rootfs tree (embed
// keeps only regular files): unit enablement; the gpt-auto generator masked,
// since it would try to automount the ESP; units masked that have nothing
// to do on a read-only image (apt's timers, dpkg's backups, e2scrub); and
// resolv.conf pointed at systemd-resolved (debootstrap leaves a copy of the
// build host's).
var links = map[string]string{
	"etc/systemd/system/multi-user.target.wants/twinroot.target":   "/usr/lib/systemd/system/twinroot.target",
	"etc/systemd/system/timers.target.wants/twinroot-update.timer": "/usr/lib/systemd/system/twinroot-update.timer",
	"etc/systemd/system-generators/systemd-gpt-auto-generator":     "/dev/null",
	"etc/systemd/system/apt-daily.timer":                           "/dev/null",
	"etc/systemd/system/apt-daily-upgrade.timer":                   "/dev/null",
	"etc/systemd/system/dpkg-db-backup.timer":                      "/dev/null",
	"etc/systemd/system/e2scrub_all.timer":                         "/dev/null",
	"etc/systemd/system/e2scrub_reap.service":                      "/dev/null",
	"etc/resolv.conf": "../run/systemd/resolve/stub-resolv.conf",
}

// debootstrapHash names a debootstrap of Suite from Mirror with Packages.
func debootstrapHash() string {
	h := sha256.New()
	fmt.Fprintf(h, "suite %s\nmirror %s\npackages %s\n", Suite, Mirror, strings.Join(Packages, ","))
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// BaseHash names a base root by its inputs: suite, mirror, package list,
// base.sh and the initramfs script. (The mirror's package versions are not
// an input: a rebuild after a point release can differ.)
func BaseHash() string {
	h := sha256.New()
	fmt.Fprintf(h, "debootstrap %s\n", debootstrapHash())
	fmt.Fprintf(h, "base.sh %d\n", len(baseScript))
	h.Write(baseScript)
	fmt.Fprintf(h, "initramfs %d\n", len(initramfsScript))
	h.Write(initramfsScript)
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// BaseDir is where BuildBase keeps the base root under cache.
func BaseDir(cache string) string { return filepath.Join(cache, "base-"+BaseHash()) }

// BuildBase returns the cached base root under cache, building it first when
// it is absent: debootstrap, then base.sh. The plain debootstrap is cached
// too (cache/debootstrap-<hash of suite, mirror and packages>), so a change
// to base.sh or the initramfs script does not fetch the packages again.
// Each stage is built in a temporary directory beside its cache entry and
// renamed at the end, so a failed or interrupted build leaves no half root
// under a cached name. Progress goes to log (may be nil).
func BuildBase(ctx context.Context, cache string, log io.Writer) (string, error) {
	if log == nil {
		log = io.Discard
	}
	cache, err := filepath.Abs(cache)
	if err != nil {
		return "", err
	}
	dir := BaseDir(cache)
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		fmt.Fprintf(log, "base root %s (cached)\n", dir)
		return dir, nil
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("build base root %s: debootstrap and chroot need root", dir)
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	start := time.Now()
	boot, err := debootstrap(ctx, cache, log)
	if err != nil {
		return "", err
	}

	tmp, err := os.MkdirTemp(cache, ".base-"+BaseHash()+"-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	root := filepath.Join(tmp, "root")
	hook := filepath.Join(tmp, "twinroot-data")
	script := filepath.Join(tmp, "base.sh")
	if err := os.WriteFile(hook, initramfsScript, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(script, baseScript, 0o755); err != nil {
		return "", err
	}
	// A real copy: base.sh changes files in place.
	if out, err := exec.CommandContext(ctx, "cp", "-a", boot, root).CombinedOutput(); err != nil {
		return "", fmt.Errorf("copy %s: %v: %s", boot, err, strings.TrimSpace(string(out)))
	}
	step := time.Now()
	fmt.Fprintf(log, "base.sh: trim modules, initramfs, configure (log %s)\n", filepath.Join(tmp, "base.log"))
	// A private mount namespace: what base.sh mounts in the root goes away
	// with it, even when it is killed.
	if err := run(ctx, filepath.Join(tmp, "base.log"), "unshare", "--mount", "--propagation", "private", "sh", script, root, hook); err != nil {
		return "", fmt.Errorf("base.sh: %w", err)
	}
	fmt.Fprintf(log, "base.sh took %v\n", time.Since(step).Round(time.Second))
	if err := os.Rename(root, dir); err != nil {
		return "", fmt.Errorf("base root: %w", err)
	}
	fmt.Fprintf(log, "base root %s built in %v\n", dir, time.Since(start).Round(time.Second))
	return dir, nil
}

// debootstrap returns the cached debootstrap of Packages, making it first
// when absent.
func debootstrap(ctx context.Context, cache string, log io.Writer) (string, error) {
	dir := filepath.Join(cache, "debootstrap-"+debootstrapHash())
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		fmt.Fprintf(log, "debootstrap %s (cached)\n", dir)
		return dir, nil
	}
	tmp, err := os.MkdirTemp(cache, ".debootstrap-"+debootstrapHash()+"-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	root := filepath.Join(tmp, "root")
	start := time.Now()
	fmt.Fprintf(log, "debootstrap %s from %s (log %s)\n", Suite, Mirror, filepath.Join(tmp, "debootstrap.log"))
	// In a private mount namespace: whatever debootstrap mounts in the root
	// (proc, sys, dev) goes away with it, even when it is killed, so the
	// RemoveAll above never walks into a mounted /dev.
	args := []string{"--mount", "--propagation", "private", "debootstrap", "--variant=minbase",
		"--include=" + strings.Join(Packages, ","), Suite, root, Mirror}
	if err := run(ctx, filepath.Join(tmp, "debootstrap.log"), "unshare", args...); err != nil {
		return "", fmt.Errorf("debootstrap: %w", err)
	}
	if err := os.Rename(root, dir); err != nil {
		return "", fmt.Errorf("debootstrap: %w", err)
	}
	fmt.Fprintf(log, "debootstrap took %v\n", time.Since(start).Round(time.Second))
	return dir, nil
}

// run runs name with args, its output going to logFile; on failure the
// error carries the log's last lines.
func run(ctx context.Context, logFile, name string, args ...string) error {
	f, err := os.Create(logFile)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive")
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(logFile)
		return fmt.Errorf("%v\n%s", err, tail(string(b), 20))
	}
	return nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Assemble writes the root of the Debian reference system to out: a
// hard-link copy of base (a plain copy when out is on another file system),
// the rootfs tree and its links over it, and the updater binary at Updater.
// Files from the tree replace the base's by removing the link first and
// writing a new file, never by writing into a file the base shares. An
// existing out is replaced if an earlier Assemble wrote it, refused
// otherwise. The result is built beside out and renamed into place.
func Assemble(ctx context.Context, base, updater, out string) error {
	if _, err := os.Stat(filepath.Join(base, "boot", "vmlinuz")); err != nil {
		return fmt.Errorf("assemble: %s is not a base root: %w", base, err)
	}
	if _, err := os.Stat(updater); err != nil {
		return fmt.Errorf("assemble: updater binary: %w", err)
	}
	if _, err := os.Lstat(out); err == nil {
		if _, err := os.Stat(filepath.Join(out, "usr/lib/systemd/system/twinroot-boot.service")); err != nil {
			return fmt.Errorf("assemble: %s exists and is not an assembled root; left untouched", out)
		}
	}
	out = filepath.Clean(out)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(out), "."+filepath.Base(out)+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	root := filepath.Join(tmp, "root")
	if err := copyTree(ctx, base, root); err != nil {
		return err
	}
	err = fs.WalkDir(rootfsTree, "rootfs", func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == "rootfs" {
			return err
		}
		dst := filepath.Join(root, strings.TrimPrefix(p, "rootfs/"))
		if d.IsDir() {
			return mkdir(dst)
		}
		b, err := rootfsTree.ReadFile(p)
		if err != nil {
			return err
		}
		return replaceFile(dst, b, 0o644)
	})
	if err != nil {
		return fmt.Errorf("assemble: rootfs tree: %w", err)
	}
	for name, target := range links {
		dst := filepath.Join(root, name)
		if err := mkdir(filepath.Dir(dst)); err != nil {
			return err
		}
		if err := os.Remove(dst); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := os.Symlink(target, dst); err != nil {
			return fmt.Errorf("assemble: %w", err)
		}
	}
	for _, d := range []string{"data", "var/lib/containers", "var/log/journal", "usr/share/containers/systemd"} {
		if err := mkdir(filepath.Join(root, d)); err != nil {
			return err
		}
	}
	b, err := os.ReadFile(updater)
	if err != nil {
		return fmt.Errorf("assemble: updater binary: %w", err)
	}
	if err := replaceFile(filepath.Join(root, Updater), b, 0o755); err != nil {
		return fmt.Errorf("assemble: %w", err)
	}
	if err := os.RemoveAll(out); err != nil {
		return fmt.Errorf("assemble: remove the earlier %s: %w", out, err)
	}
	if err := os.Rename(root, out); err != nil {
		return fmt.Errorf("assemble: %w", err)
	}
	return nil
}

// copyTree copies base to dst with hard links (cp -al), or copies the
// files when the link fails (another file system).
func copyTree(ctx context.Context, base, dst string) error {
	out, err := exec.CommandContext(ctx, "cp", "-al", base, dst).CombinedOutput()
	if err == nil {
		return nil
	}
	os.RemoveAll(dst)
	if out2, err2 := exec.CommandContext(ctx, "cp", "-a", base, dst).CombinedOutput(); err2 != nil {
		return fmt.Errorf("copy %s: cp -al: %v: %s; cp -a: %v: %s", base, err, strings.TrimSpace(string(out)), err2, strings.TrimSpace(string(out2)))
	}
	return nil
}

func mkdir(p string) error {
	if err := os.MkdirAll(p, 0o755); err != nil {
		return fmt.Errorf("assemble: %w", err)
	}
	return nil
}

// replaceFile removes dst (which may be a hard link into the base) and
// writes a new file in its place.
func replaceFile(dst string, b []byte, mode fs.FileMode) error {
	if err := mkdir(filepath.Dir(dst)); err != nil {
		return err
	}
	if err := os.Remove(dst); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil { // past the umask
		f.Close()
		return err
	}
	return f.Close()
}

// Options of Build.
type Options struct {
	Cache   string    // where base roots are cached, e.g. build/debian
	Updater string    // static updater binary
	Log     io.Writer // progress; may be nil
}

// Build assembles the root of the Debian reference system at out, building
// the base root first when the cache has none for the current inputs.
func Build(ctx context.Context, o Options, out string) error {
	log := o.Log
	if log == nil {
		log = io.Discard
	}
	base, err := BuildBase(ctx, o.Cache, log)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := Assemble(ctx, base, o.Updater, out); err != nil {
		return err
	}
	fmt.Fprintf(log, "assembled %s from %s in %v\n", out, base, time.Since(start).Round(time.Millisecond))
	return nil
}
