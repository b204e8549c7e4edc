package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twinroot/twinroot/internal/cli"
	"github.com/twinroot/twinroot/internal/keys"
)

// TestBuildRefusesBundle: a bundle twinroot cannot honour exits 3 with one
// line naming the service and key, and leaves no output directory.
func TestBuildRefusesBundle(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	os.MkdirAll(filepath.Join(root, "boot"), 0o755)
	os.WriteFile(filepath.Join(root, "boot", "vmlinuz"), []byte("k"), 0o644)
	os.WriteFile(filepath.Join(root, "boot", "initrd.img"), []byte("i"), 0o644)
	bundle := filepath.Join(dir, "services")
	os.MkdirAll(bundle, 0o755)
	os.WriteFile(filepath.Join(bundle, "compose.yaml"), []byte("services:\n  web:\n    image: web:1\n    privileged: true\n"), 0o644)
	k, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, pub, err := keys.Save(filepath.Join(dir, "release"), k)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	got, code := run(t, "build", "--rootfs", root, "--containers", bundle, "--trust", pub,
		"--version", "1.0.0", "--serial", "1", "--out", out)
	if code != cli.ExitRefused || !strings.Contains(got, "service web: key privileged is not supported") || strings.Count(strings.TrimSpace(got), "\n") > 0 {
		t.Errorf("build with an unsupported key: exit %d, %q; want exit 3 and one line naming the key", code, got)
	}
	// The image is in no archive: refused too, before anything is written.
	os.WriteFile(filepath.Join(bundle, "compose.yaml"), []byte("services:\n  web:\n    image: web:1\n"), 0o644)
	got, code = run(t, "build", "--rootfs", root, "--containers", bundle, "--trust", pub,
		"--version", "1.0.0", "--serial", "1", "--out", out)
	if code != cli.ExitRefused || !strings.Contains(got, "service web: image web:1 is in no archive") {
		t.Errorf("build with a missing archive: exit %d, %q", code, got)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a refused build left %s (%v)", out, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 4 {
		t.Errorf("a refused build left files beside its output: %v", entries)
	}
}
