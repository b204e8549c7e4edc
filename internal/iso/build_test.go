package iso

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twinroot/twinroot/image"
	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/manifest"
	"github.com/twinroot/twinroot/internal/refusal"
	"github.com/twinroot/twinroot/internal/release"
)

// fixture is a complete set of ISO inputs without a real kernel: every
// module the installer wants is declared built in.
type fixture struct {
	dir       string
	opts      Options
	bare      string // the release before signing
	key, pub  string
	otherKey  *keys.PrivateKey
	signedKey *keys.PrivateKey
}

var created = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	f := &fixture{dir: dir}
	write := func(p string, b []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A kernel directory: modules all built in, so no module files.
	kdir := filepath.Join(dir, "kernel")
	write(filepath.Join(kdir, "vmlinuz"), bytes.Repeat([]byte("kernel"), 1000))
	write(filepath.Join(kdir, "version"), []byte("6.1.0-test\n"))
	mods := filepath.Join(kdir, "lib", "modules", "6.1.0-test")
	write(filepath.Join(mods, "modules.dep"), nil)
	var builtin []string
	for _, m := range installerModules {
		builtin = append(builtin, "kernel/drivers/"+m+".ko")
	}
	write(filepath.Join(mods, "modules.builtin"), []byte(strings.Join(builtin, "\n")+"\n"))
	// GRUB images for the target disk.
	gdir := filepath.Join(dir, "grub")
	write(filepath.Join(gdir, "boot.img"), make([]byte, 512))
	write(filepath.Join(gdir, "core.img"), []byte("core"))
	write(filepath.Join(gdir, "BOOTX64.EFI"), []byte("efi"))
	// A static init.
	src := filepath.Join(dir, "init", "main.go")
	write(src, []byte("package main\n\nfunc main() {}\n"))
	inst := filepath.Join(dir, "installer")
	cmd := exec.Command("go", "build", "-o", inst, src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build a static init: %v: %s", err, out)
	}
	// A release signed by a key its image trusts.
	k, err := keys.Generate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f.signedKey = k
	_, pub, err := keys.Save(filepath.Join(dir, "release"), k)
	if err != nil {
		t.Fatal(err)
	}
	if f.otherKey, err = keys.Generate(rand.Reader); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	write(filepath.Join(root, "boot", "vmlinuz"), []byte("kernel"))
	write(filepath.Join(root, "boot", "initrd.img"), []byte("initrd"))
	f.bare = filepath.Join(dir, "bare")
	if _, err := release.Build(ctx, release.BuildOptions{
		Image: image.BuildOptions{Rootfs: root, Trust: []string{pub}, Version: "1.0.0", Serial: 1},
		Out:   f.bare,
	}); err != nil {
		t.Fatal(err)
	}
	rel := f.release(t, "signed", k)
	cfg := filepath.Join(dir, "device.yaml")
	if err := os.WriteFile(cfg, []byte("source: file:///media/usb/fleet\nslot_size: 64M\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.opts = Options{Release: rel, Config: cfg, Out: filepath.Join(dir, "installer.iso"), KernelDir: kdir, GrubDir: gdir, Installer: inst}
	return f
}

// release copies the bare release to name and signs it with signers (none:
// left bare).
func (f *fixture) release(t *testing.T, name string, signers ...*keys.PrivateKey) string {
	t.Helper()
	dst := filepath.Join(f.dir, name)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{release.SlotFile, release.IndexFile, release.ManifestFile} {
		b, err := os.ReadFile(filepath.Join(f.bare, n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if len(signers) > 0 {
		if _, _, err := release.SignDir(context.Background(), dst, "stable", created, 30*24*time.Hour, signers...); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestBuildReproducible builds the ISO twice from the same inputs, with
// different file times in between, and wants the same bytes; xorriso's own
// report shows the BIOS and UEFI boot entries and the EFI partition.
func TestBuildReproducible(t *testing.T) {
	f := newFixture(t)
	a, b := f.opts, f.opts
	a.Out, b.Out = filepath.Join(f.dir, "a.iso"), filepath.Join(f.dir, "b.iso")
	ra, err := Build(t.Context(), a)
	if err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	for _, p := range []string{f.opts.Config, f.opts.Installer, filepath.Join(f.opts.Release, release.SlotFile)} {
		if err := os.Chtimes(p, later, later); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Build(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	ba, _ := os.ReadFile(a.Out)
	bb, _ := os.ReadFile(b.Out)
	if !bytes.Equal(ba, bb) {
		t.Errorf("two builds from the same inputs differ (%d and %d bytes)", len(ba), len(bb))
	}
	t.Logf("ISO %d bytes (%.1f MiB), initramfs %d bytes, built in %v", ra.Size, float64(ra.Size)/(1<<20), ra.Initrd, ra.Duration.Round(time.Millisecond))

	out, err := exec.Command("xorriso", "-indev", a.Out, "-report_el_torito", "plain", "-report_system_area", "plain",
		"-find", "/", "-type", "f").CombinedOutput()
	if err != nil {
		t.Fatalf("xorriso report: %v\n%s", err, out)
	}
	report := string(out)
	for _, want := range []string{
		"El Torito boot img :   1  BIOS", "El Torito boot img :   2  UEFI",
		"GPT partname local :   2", "/boot/grub/efi.img", "/boot/vmlinuz", "/boot/initrd.img",
		"/twinroot/release/slot.img", "/twinroot/release/manifest.json", "/twinroot/device.yaml",
		"/twinroot/grub/core.img", "/twinroot/medium-" + ra.ID,
	} {
		if !strings.Contains(report, want) {
			t.Errorf("xorriso's report of the ISO lacks %q:\n%s", want, report)
		}
	}
}

// TestBuildRefuses checks the inputs Build refuses, each with a one-line
// error and no ISO written.
func TestBuildRefuses(t *testing.T) {
	f := newFixture(t)
	corrupt := f.release(t, "corrupt", f.signedKey)
	img := filepath.Join(corrupt, release.SlotFile)
	b, _ := os.ReadFile(img)
	b[len(b)/2] ^= 1
	os.WriteFile(img, b, 0o644)
	for _, tc := range []struct {
		name   string
		change func(o *Options)
		is     error
		text   string
	}{
		{"unsigned", func(o *Options) { o.Release = f.bare }, release.ErrUnsigned, "updater sign"},
		{"untrusted key", func(o *Options) { o.Release = f.release(t, "other", f.otherKey) }, manifest.ErrUntrustedKey, "the image trusts"},
		{"corrupt image", func(o *Options) { o.Release = corrupt }, refusal.ErrMismatch, "slot.img"},
		{"no kernel", func(o *Options) { o.KernelDir = filepath.Join(f.dir, "nokernel") }, ErrMissingInput, "make kernel"},
		{"no GRUB images", func(o *Options) { o.GrubDir = filepath.Join(f.dir, "nogrub") }, ErrMissingInput, "make grub"},
		{"dynamic installer", func(o *Options) { o.Installer = "/bin/sh" }, ErrMissingInput, "CGO_ENABLED=0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := f.opts
			o.Out = filepath.Join(t.TempDir(), "refused.iso")
			tc.change(&o)
			_, err := Build(t.Context(), o)
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.text) || strings.Contains(err.Error(), "\n") {
				t.Errorf("Build = %v, want one line matching %v and naming %q", err, tc.is, tc.text)
			}
			if _, err := os.Stat(o.Out); err == nil {
				t.Errorf("a refused build wrote %s", o.Out)
			}
		})
	}
}
