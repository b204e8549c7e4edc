package debian_test

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twinroot/twinroot/image/examples/debian"
	"github.com/twinroot/twinroot/image/examples/debian/services"
	"github.com/twinroot/twinroot/internal/containers"
	"github.com/twinroot/twinroot/internal/testenv"
)

// TestBundleInTheRoot bakes the reference bundle into the Debian root as
// updater build --containers does: the services built by the build host's
// podman, the images in the slot's read-only store, and the units checked
// by the root's own Quadlet (podman 5.4, quadlet -dryrun in a chroot).
// A unit that Quadlet does not accept fails the check.
func TestBundleInTheRoot(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.Need(t, "podman", "debootstrap", "chroot")
	root := assembled(t)
	bundle := t.TempDir()
	if err := services.Write(bundle, services.Options{Version: "1.0.0"}); err != nil {
		t.Fatal(err)
	}
	b, err := containers.Load(t.Context(), bundle)
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.Prepare(t.Context(), containers.Podman{Args: []string{"--runtime", "runc"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Bake(t.Context(), containers.Podman{Args: []string{"--runtime", "runc"}}, root, debian.Updater); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(root, containers.StoreDir)
	images, err := os.ReadFile(filepath.Join(store, "overlay-images", "images.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Services {
		if !strings.Contains(string(images), strings.TrimPrefix(s.ImageID, "sha256:")) {
			t.Errorf("the slot's image store lacks %s's image %s", s.Name, s.ImageID)
		}
	}
	// A read-only store needs its lock files; the build host's database
	// has no place in it.
	for _, f := range []string{"overlay-images/images.lock", "overlay-layers/layers.lock"} {
		if _, err := os.Stat(filepath.Join(store, f)); err != nil {
			t.Errorf("store: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(store, "libpod")); err == nil {
		t.Error("the store carries the build host's libpod database")
	}
	// The same images give the same store, byte for byte: a release with
	// services stays reproducible.
	again := assembled(t)
	if err := p.Bake(t.Context(), containers.Podman{Args: []string{"--runtime", "runc"}}, again, debian.Updater); err != nil {
		t.Fatal(err)
	}
	if a, b := treeDigest(t, store), treeDigest(t, filepath.Join(again, containers.StoreDir)); a != b {
		t.Errorf("two bakes of one bundle gave different stores:\n%s\n---\n%s", a, b)
	}

	out, err := exec.CommandContext(t.Context(), "chroot", root, containers.QuadletBin, "-dryrun").Output()
	if err != nil {
		t.Fatalf("quadlet -dryrun: %v", err)
	}
	web, _ := p.Service("web")
	for _, want := range []string{
		"---backend.service---", "---web.service---", "---backend-data-volume.service---",
		"ExecStartPre=/usr/bin/updater containers env web",
		"ExecStart=/usr/bin/podman --storage-opt=additionalimagestore=/usr/lib/containers/storage run --name web",
		"--pull never", "--sdnotify=healthy", "--read-only", "--env-file /run/twinroot/containers/web.env",
		"--publish 8080:8080", "-v backend-data:/data", strings.TrimPrefix(web.ImageID, "sha256:"),
		"Requires=backend.service", "After=backend.service",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("quadlet -dryrun output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("quadlet -dryrun:\n%s", out)
	}

	unit := filepath.Join(root, containers.UnitDir, "web.container")
	text, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(unit)
	if err := os.WriteFile(unit, []byte(strings.Replace(string(text), "[Container]\n", "[Container]\nBogusKey=1\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	err = containers.CheckQuadlet(t.Context(), root)
	if !errors.Is(err, containers.ErrRefused) || !strings.Contains(err.Error(), `converting "web.container": unsupported key 'BogusKey'`) {
		t.Errorf("CheckQuadlet with an unknown key = %v, want a refusal naming the unit and the key", err)
	}
}

// treeDigest lists every entry under dir with its mode, and its content or
// link target.
func treeDigest(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(&b, "%s %v", rel, fi.Mode())
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			fmt.Fprintf(&b, " -> %s", target)
		case fi.Mode().IsRegular():
			c, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " %x", sha256.Sum256(c))
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// assembled returns a root assembled for this test from the cached base
// (built when absent), with a stand-in updater, beside the base so the
// copy is made of hard links.
func assembled(t *testing.T) string {
	t.Helper()
	cache := os.Getenv("TWINROOT_DEBIAN_CACHE")
	if cache == "" {
		cache = filepath.Join(repoRoot(t), "build", "debian")
	}
	if _, err := os.Stat(debian.BaseDir(cache)); err != nil && testing.Short() {
		t.Skipf("no base root at %s: skipped with -short (build-debian makes it)", debian.BaseDir(cache))
	}
	base, err := debian.BuildBase(t.Context(), cache, tlog{t})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(cache, ".test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	root := filepath.Join(dir, "root")
	updater := filepath.Join(dir, "updater")
	if err := os.WriteFile(updater, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := debian.Assemble(t.Context(), base, updater, root); err != nil {
		t.Fatal(err)
	}
	return root
}

func repoRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	t.Fatal("no go.mod above " + dir)
	return ""
}

// tlog sends progress lines to the test log.
type tlog struct{ t *testing.T }

func (l tlog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
