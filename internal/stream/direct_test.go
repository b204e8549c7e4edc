package stream

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// TestDirectReader reads unaligned spans of a file around the page cache,
// on disk and on tmpfs, and gets the file's bytes, up to its end.
func TestDirectReader(t *testing.T) {
	for _, dir := range []string{t.TempDir(), "/dev/shm"} {
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		data := make([]byte, 3*directBuf+1234)
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		path := filepath.Join(dir, "direct-reader-test")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(path) })
		d, err := OpenDirectReader(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: direct %v", dir, d.Direct())
		for _, c := range []struct{ off, n int64 }{{0, 1}, {1, Block}, {Block - 1, 2}, {12345, directBuf + 777}, {0, int64(len(data))}, {int64(len(data)) - 5, 5}} {
			p := make([]byte, c.n)
			if n, err := d.ReadAt(p, c.off); err != nil || int64(n) != c.n || !bytes.Equal(p, data[c.off:c.off+c.n]) {
				t.Errorf("%s: ReadAt(%d bytes at %d) = %d, %v; equal %v", dir, c.n, c.off, n, err, bytes.Equal(p, data[c.off:c.off+c.n]))
			}
		}
		// Past the end: what there is, then io.EOF.
		p := make([]byte, 10)
		if n, err := d.ReadAt(p, int64(len(data))-4); n != 4 || !errors.Is(err, io.EOF) || !bytes.Equal(p[:4], data[len(data)-4:]) {
			t.Errorf("%s: ReadAt past the end = %d, %v", dir, n, err)
		}
		d.Close()
	}
}
