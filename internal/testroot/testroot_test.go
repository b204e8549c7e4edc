package testroot

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// treeSum hashes every file's path and content under dir, in walk order.
func treeSum(t *testing.T, dir string) string {
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
	return fmt.Sprintf("%x", h.Sum(nil))
}

// TestDeltaBytes pins the roots the delta tests of packages chunk and agent
// measure: their printed figures and thresholds hold for these bytes, and
// a change to the generator must not move them silently.
func TestDeltaBytes(t *testing.T) {
	if testing.Short() {
		t.Skip("writes two roots of 110 MB")
	}
	agent := Delta(42).WithBoot(4<<20, 1<<20)
	agent.Words = Prose
	for _, tt := range []struct {
		name  string
		spec  Spec
		files int
		bytes int64
		sum   string
	}{
		{"chunk", Delta(42), 5331, 107914685, "a62ac25377cb7e1a29e55f1f8ddb251fe33a67402161f6e43592ebed7903d6d9"},
		{"agent", agent, 5333, 108152580, "a6f4470a299b7d812b1e836672968b4d44b1fb3d730a1dfd474c14e7d995a79c"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			st, err := tt.spec.Write(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := st, (Stats{Files: tt.files, Bytes: tt.bytes}); got != want {
				t.Errorf("Write = %+v, want %+v", got, want)
			}
			if got := treeSum(t, dir); got != tt.sum {
				t.Errorf("tree sum = %s, want %s", got, tt.sum)
			}
		})
	}
}

func TestSized(t *testing.T) {
	const size = 8 << 20
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	sa, err := Sized(1, size).Write(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Sized(1, size).Write(b); err != nil {
		t.Fatal(err)
	}
	if _, err := Sized(2, size).Write(c); err != nil {
		t.Fatal(err)
	}
	if got, want := sa.Bytes, int64(size); got != want {
		t.Errorf("Sized(%d).Write: Bytes = %d, want %d", size, got, want)
	}
	if sa.Files < 150 {
		t.Errorf("Sized(%d).Write: Files = %d, want many small files (at least 150)", size, sa.Files)
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

// TestFilesBytes: a group sized by bytes stops at exactly that many, the
// last file cut short.
func TestFilesBytes(t *testing.T) {
	dir := t.TempDir()
	s := Spec{Seed: 3, Files: []Files{{Name: Numbered("f%d"), Kind: Text, Bytes: 100_000, Min: 1000, Spread: 30_000}}}
	st, err := s.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Bytes != 100_000 || st.Files < 4 {
		t.Errorf("Write = %+v, want 100000 bytes in at least 4 files", st)
	}
	last, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("f%d", st.Files-1)))
	if err != nil {
		t.Fatal(err)
	}
	if len(last) == 0 {
		t.Error("the last file is empty")
	}
}

func TestMixed(t *testing.T) {
	for _, o := range []MixOptions{{Spread: 256 << 10}, {Spread: 192 << 10, Programs: true}} {
		a, b := Mixed(1, 3<<20+7, o), Mixed(1, 3<<20+7, o)
		if len(a) != 3<<20+7 {
			t.Errorf("Mixed(%+v) returns %d bytes, want %d", o, len(a), 3<<20+7)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("two calls of Mixed(1, %+v) differ", o)
		}
		if bytes.Equal(a, Mixed(2, len(a), o)) {
			t.Errorf("Mixed(%+v) of seeds 1 and 2 are the same", o)
		}
	}
}
