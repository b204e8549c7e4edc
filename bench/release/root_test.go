package main

import (
	"crypto/sha256"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// treeSum hashes every file's path and content under dir, in walk order.
func treeSum(t *testing.T, dir string) [sha256.Size]byte {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		h.Write([]byte(rel + "\x00"))
		h.Write(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return [sha256.Size]byte(h.Sum(nil))
}

func TestGenerateRoot(t *testing.T) {
	const size = 8 << 20
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	sa, err := GenerateRoot(a, size, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := GenerateRoot(b, size, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := GenerateRoot(c, size, 2); err != nil {
		t.Fatal(err)
	}
	if got, want := sa.Bytes, int64(size); got != want {
		t.Errorf("GenerateRoot(%d).Bytes = %d, want %d", size, got, want)
	}
	if sa.Files < 150 {
		t.Errorf("GenerateRoot(%d).Files = %d, want many small files (at least 150)", size, sa.Files)
	}
	for _, f := range []string{"boot/vmlinuz", "boot/initrd.img"} {
		if _, err := os.Stat(filepath.Join(a, f)); err != nil {
			t.Errorf("generated root lacks /%s, which updater build requires: %v", f, err)
		}
	}
	if treeSum(t, a) != treeSum(t, b) {
		t.Errorf("two roots of seed 1 differ")
	}
	if treeSum(t, a) == treeSum(t, c) {
		t.Errorf("roots of seeds 1 and 2 are the same")
	}
}
