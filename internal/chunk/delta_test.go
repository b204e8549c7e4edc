package chunk

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/twinroot/twinroot/internal/testroot"
)

// mksquashfs makes a reproducible squashfs image of root. comp is xz,
// gzip, none (nothing compressed) or xz-nofrag (no tail packing: every
// small file in its own block).
func mksquashfs(t testing.TB, root, img, comp string) {
	t.Helper()
	args := []string{root, img, "-noappend", "-all-root", "-mkfs-time", "0", "-all-time", "0", "-no-xattrs", "-no-progress", "-quiet"}
	switch comp {
	case "none":
		args = append(args, "-noI", "-noId", "-noD", "-noF", "-noX")
	case "xz-nofrag":
		args = append(args, "-comp", "xz", "-no-fragments")
	default:
		args = append(args, "-comp", comp)
	}
	if out, err := exec.Command("mksquashfs", args...).CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs %s: %v\n%s", comp, err, out)
	}
}

// fixedShared returns how many bytes of b's fixed-size blocks are blocks of a.
func fixedShared(t testing.TB, a, b string, size int64) (shared, total int64) {
	t.Helper()
	sums := func(path string) [][sha256.Size]byte {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var out [][sha256.Size]byte
		buf := make([]byte, size)
		for {
			n, err := io.ReadFull(f, buf)
			if n > 0 {
				out = append(out, sha256.Sum256(buf[:n]))
				total += int64(n)
			}
			if err != nil {
				return out
			}
		}
	}
	have := make(map[[sha256.Size]byte]bool)
	for _, s := range sums(a) {
		have[s] = true
	}
	total = 0
	for _, s := range sums(b) {
		if have[s] {
			shared += size
		}
	}
	return min(shared, total), total
}

// scanIndex chunks a file with p, without compressing.
func scanIndex(t testing.TB, path string, p Params) *Index {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	idx := &Index{Params: p}
	err = Scan(context.Background(), f, p, func(c Chunk) error {
		idx.Chunks = append(idx.Chunks, c)
		idx.Size += c.Length
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// buildFile builds the index and object of an image file; the object is
// kept only as its size.
func buildFile(t testing.TB, path string, p Params) *Index {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	idx, err := BuildWith(context.Background(), f, io.Discard, p)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// newBytes returns the raw and compressed bytes of b's chunks that a lacks.
func newBytes(a, b *Index) (raw, compressed int64) {
	have := make(map[[sha256.Size]byte]bool, len(a.Chunks))
	for _, c := range a.Chunks {
		have[c.SHA256] = true
	}
	for _, c := range b.Chunks {
		if !have[c.SHA256] {
			raw += c.Length
			compressed += c.CompressedLength
		}
	}
	return raw, compressed
}

// changedContent replaces one small configuration file (8 KiB) of the root.
const changedContent = "# changed by the delta test\nanswer = 42\n"

// TestDelta is the delta measurement: two xz squashfs images of a
// root of more than 100 MB that differ by one small file share at least 97%
// of their chunk bytes with content-defined chunks, and far less with
// fixed-size chunks of the same average size, since the change shifts
// everything after it.
func TestDelta(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two 100 MB squashfs images (about 30 s)")
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	st, err := testroot.Delta(42).Write(root)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.Bytes; n < 100<<20 {
		t.Fatalf("root holds %d bytes, want at least 100 MiB", n)
	} else {
		t.Logf("root: %.1f MB", float64(n)/1e6)
	}
	a, b := filepath.Join(dir, "a.img"), filepath.Join(dir, "b.img")
	mksquashfs(t, root, a, "xz")
	changed := filepath.Join(root, "etc/conf.d/d25/f2501.conf")
	if err := os.WriteFile(changed, []byte(changedContent), 0o644); err != nil {
		t.Fatal(err)
	}
	mksquashfs(t, root, b, "xz")

	ia, ib := buildFile(t, a, DefaultParams), buildFile(t, b, DefaultParams)
	shared := Shared(ia, ib)
	frac := float64(shared) / float64(ib.Size)
	nraw, ncomp := newBytes(ia, ib)
	avg := ib.Size / int64(len(ib.Chunks))
	fs, ft := fixedShared(t, a, b, avg)
	ffrac := float64(fs) / float64(ft)
	fmt.Printf("delta: xz squashfs %.1f MB, one small file changed: content-defined chunks (avg %d KiB) share %.2f%% (%d KiB to fetch, %d KiB compressed); fixed %d KiB chunks share %.2f%%\n",
		float64(ib.Size)/1e6, avg>>10, 100*frac, nraw>>10, ncomp>>10, avg>>10, 100*ffrac)
	if frac < 0.97 {
		t.Errorf("content-defined chunks share %.4f of the image, want at least 0.97", frac)
	}
	if ffrac >= 0.97 {
		t.Errorf("fixed-size chunks share %.4f of the image: the change did not shift the image", ffrac)
	}
}

// TestDeltaSweep prints, for each squashfs compression and several chunker
// parameters, what images that differ by one small file (changed, or added)
// share, and what a device would fetch, on a generated root; bench/delta
// measures real Debian updates. Run it with TWINROOT_CHUNK_SWEEP=1 (a few
// minutes).
func TestDeltaSweep(t *testing.T) {
	if os.Getenv("TWINROOT_CHUNK_SWEEP") == "" {
		t.Skip("set TWINROOT_CHUNK_SWEEP=1 to measure")
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if _, err := testroot.Delta(42).Write(root); err != nil {
		t.Fatal(err)
	}
	changed := filepath.Join(root, "etc/conf.d/d25/f2501.conf")
	added := filepath.Join(root, "etc/conf.d/d25/f2501b.conf")
	old, err := os.ReadFile(changed)
	if err != nil {
		t.Fatal(err)
	}
	sweep := []Params{
		DefaultParams,
		{Polynomial: Polynomial, MinSize: 4 << 10, MaxSize: 256 << 10, AverageBits: 16, CutXZ: true},
		{Polynomial: Polynomial, MinSize: 16 << 10, MaxSize: 256 << 10, AverageBits: 16},
		{Polynomial: Polynomial, MinSize: 64 << 10, MaxSize: 1 << 20, AverageBits: 17},
		{Polynomial: Polynomial, MinSize: 256 << 10, MaxSize: 4 << 20, AverageBits: 19},
	}
	for _, comp := range []string{"xz", "xz-nofrag", "gzip", "none"} {
		img := func(name string) string { return filepath.Join(dir, comp+"-"+name+".img") }
		start := time.Now()
		mksquashfs(t, root, img("a"), comp)
		took := time.Since(start)
		if err := os.WriteFile(changed, []byte(changedContent), 0o644); err != nil {
			t.Fatal(err)
		}
		mksquashfs(t, root, img("changed"), comp)
		if err := os.WriteFile(changed, old, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(added, []byte("added = true\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		mksquashfs(t, root, img("added"), comp)
		if err := os.Remove(added); err != nil {
			t.Fatal(err)
		}
		for _, p := range sweep {
			ia := buildFile(t, img("a"), p)
			avg := ia.Size / int64(len(ia.Chunks))
			t.Logf("%-4s image %3d MB (mksquashfs %v), object %3d MB; min %3dK max %4dK bits %d cut-xz %-5v: %4d chunks avg %3dK, index %3d KiB",
				comp, ia.Size>>20, took.Round(100*time.Millisecond), ia.CompressedSize>>20, p.MinSize>>10, p.MaxSize>>10, p.AverageBits, p.CutXZ,
				len(ia.Chunks), avg>>10, (headerSize+entrySize*len(ia.Chunks))>>10)
			for _, change := range []string{"changed", "added"} {
				ib := buildFile(t, img(change), p)
				nraw, ncomp := newBytes(ia, ib)
				fs, ft := fixedShared(t, img("a"), img(change), avg)
				t.Logf("    one file %-7s: shared %.4f, fetch %4d KiB raw %4d KiB compressed; fixed %3dK blocks share %.4f",
					change, float64(Shared(ia, ib))/float64(ib.Size), nraw>>10, ncomp>>10, avg>>10, float64(fs)/float64(ft))
			}
		}
	}
}
