package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRAUCToolsNamesPackage checks that a missing rauc is one line naming
// the Debian package to install.
func TestRAUCToolsNamesPackage(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	err := raucTools()
	if err == nil {
		t.Fatal("raucTools() with an empty PATH = nil, want an error")
	}
	if got, want := err.Error(), "rauc not found: install Debian's rauc (make deps)"; got != want {
		t.Errorf("raucTools() = %q, want %q", got, want)
	}
}

// TestRAUCInstalls reads slot B's install count from a status file as
// RAUC 1.8 writes it.
func TestRAUCInstalls(t *testing.T) {
	dir := t.TempDir()
	p := &raucPeer{status: filepath.Join(dir, "status.raucs")}
	if n, err := p.installs(); n != 0 || err != nil {
		t.Errorf("installs() before any install = %d, %v; want 0, nil", n, err)
	}
	status := strings.Join([]string{
		"[slot.rootfs.0]", "installed.count=7", "",
		"[slot.rootfs.1]", "bundle.compatible=twinroot-bench", "status=ok", "installed.count=3", "activated.count=3", "",
	}, "\n")
	if err := os.WriteFile(p.status, []byte(status), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := p.installs(); n != 3 || err != nil {
		t.Errorf("installs() = %d, %v; want 3, nil", n, err)
	}
}
