// Package testenv lets a test say what it needs of the machine: where a
// tool or root is missing it skips on a developer's machine and fails in
// CI (CI set), so CI never counts a test that did not run as passed.
package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Need fails or skips t unless every tool is on PATH.
func Need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing(t, tool+" is not installed (make deps installs it)")
		}
	}
}

// NeedRoot fails or skips t unless it runs as root.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "needs root")
	}
}

// Missing fails t in CI and skips it elsewhere: what it needs (why says
// what) is not on this machine.
func Missing(t testing.TB, why string) {
	t.Helper()
	missing(t, why)
}

func missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(why)
	}
	t.Skip(why)
}

// FileSHA256 is the hex SHA-256 of the file at path.
func FileSHA256(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// LoopDisk makes a sparse file of size bytes and attaches it to a free
// loop device, detached when the test ends (also on failure). It needs
// root.
func LoopDisk(t testing.TB, size int64) (dev, file string) {
	t.Helper()
	NeedRoot(t)
	file = filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	err = f.Truncate(size)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	return Loop(t, file), file
}

// Loop attaches file to a free loop device, detached when the test ends
// (also on failure). It needs root.
func Loop(t testing.TB, file string) (dev string) {
	t.Helper()
	NeedRoot(t)
	out, err := exec.Command("losetup", "--find", "--show", file).CombinedOutput()
	if err != nil {
		t.Fatalf("no free loop device: %v: %s", err, out)
	}
	dev = strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev
}
