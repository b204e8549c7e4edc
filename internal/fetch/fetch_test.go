package fetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twinroot/twinroot/internal/chunk"
	"github.com/twinroot/twinroot/internal/source"
)

// margin surrounds the slot on a test disk, to catch writes outside it.
const margin = 64 << 10

// fileTarget returns a disk file of the slot plus margins, filled with 0xee.
func fileTarget(t *testing.T, size int64) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.Write(bytes.Repeat([]byte{0xee}, int(size+2*margin))); err != nil {
		t.Fatal(err)
	}
	return f
}

// checkSlot asserts that the slot holds raw and the margins were not touched.
func checkSlot(t *testing.T, disk io.ReaderAt, raw []byte) {
	t.Helper()
	got := make([]byte, len(raw)+2*margin)
	if _, err := disk.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	edge := bytes.Repeat([]byte{0xee}, margin)
	if !bytes.Equal(got[:margin], edge) || !bytes.Equal(got[margin+len(raw):], edge) {
		t.Errorf("bytes outside the slot were written")
	}
	if !bytes.Equal(got[margin:margin+len(raw)], raw) {
		t.Errorf("slot differs from the image")
	}
}

func TestApplyFull(t *testing.T) {
	raw := mixed(1, 12<<20)
	rel := publish(t, t.TempDir(), "stable/1.0.0/slot.img.zst", raw, chunk.DefaultParams)
	disk := fileTarget(t, int64(len(raw)))
	j := FileJournal{Path: filepath.Join(t.TempDir(), "fetch.journal")}
	var calls int
	var last int64
	st, err := Apply(context.Background(), Options{
		Source: rel.store, ObjectKey: rel.key, Index: rel.idx,
		Target: disk, TargetOffset: margin, Journal: j,
		Progress: func(done, total int64) {
			calls++
			if done < last || total != int64(len(raw)) {
				t.Errorf("Progress(%d, %d) after %d", done, total, last)
			}
			last = done
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	checkSlot(t, disk, raw)
	t.Logf("%+v", st)
	if got, want := st.Fetched+st.Reused, int64(len(raw)); got != want {
		t.Errorf("fetched %d + reused %d = %d bytes, want the image's %d", st.Fetched, st.Reused, got, want)
	}
	// Repeated chunks (runs of zeros) are fetched once and copied after.
	if st.Reused == 0 || st.FetchedCompressed > rel.idx.CompressedSize {
		t.Errorf("reused %d, fetched %d of %d compressed: want repeats copied, nothing fetched twice", st.Reused, st.FetchedCompressed, rel.idx.CompressedSize)
	}
	if want := (rel.idx.CompressedSize + DefaultMaxRequest - 1) / DefaultMaxRequest; st.Requests < want || st.Requests > 4*want {
		t.Errorf("%d requests for %d bytes, want about %d", st.Requests, rel.idx.CompressedSize, want)
	}
	if st.Resumed || st.Retries != 0 || st.Refetched != 0 {
		t.Errorf("stats %+v: want no resume, retry or refetch", st)
	}
	if calls != len(rel.idx.Chunks)+1 || last != int64(len(raw)) {
		t.Errorf("Progress called %d times, last with %d; want %d times, last with %d", calls, last, len(rel.idx.Chunks)+1, len(raw))
	}
	s, err := j.Load()
	if err != nil {
		t.Fatal(err)
	}
	if want := (State{Index: indexID(t, rel.idx), Target: margin, Chunks: len(rel.idx.Chunks), Offset: int64(len(raw)), Size: int64(len(raw))}); s != want {
		t.Errorf("journal %+v, want %+v", s, want)
	}

	// The same release again resumes after the last chunk: nothing is
	// fetched, the slot is verified again.
	st, err = Apply(context.Background(), Options{
		Source: rel.store, ObjectKey: rel.key, Index: rel.idx,
		Target: disk, TargetOffset: margin, Journal: j,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Resumed || st.Skipped != int64(len(raw)) || st.Requests != 0 {
		t.Errorf("second apply: %+v, want resumed with everything skipped and no request", st)
	}
}

func TestApplyDelta(t *testing.T) {
	v1 := mixed(2, 32<<20)
	v2 := edit(v1, 3)
	dir := t.TempDir()
	old := publish(t, dir, "stable/1.0.0/slot.img.zst", v1, chunk.DefaultParams)
	rel := publish(t, dir, "stable/1.1.0/slot.img.zst", v2, chunk.DefaultParams)
	shared := chunk.Shared(old.idx, rel.idx)
	// A running slot damaged after it was installed, in a chunk the new
	// image shares: its index no longer tells the truth there.
	damaged := bytes.Clone(v1)
	damaged[len(v1)/4] ^= 1
	for _, tc := range []struct {
		name    string
		running []byte
		idx     *chunk.Index
		misses  bool
	}{
		{"scan", v1, nil, false},
		{"running index", v1, old.idx, false},
		{"stale running index", damaged, old.idx, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk := fileTarget(t, int64(len(v2)))
			st, err := Apply(context.Background(), Options{
				Source: rel.store, ObjectKey: rel.key, Index: rel.idx,
				Running: bytes.NewReader(tc.running), RunningSize: int64(len(tc.running)), RunningIndex: tc.idx,
				Target: disk, TargetOffset: margin,
				Journal: FileJournal{Path: filepath.Join(t.TempDir(), "journal")},
			})
			if err != nil {
				t.Fatal(err)
			}
			checkSlot(t, disk, v2)
			ratio := float64(st.FetchedCompressed) / float64(rel.idx.CompressedSize)
			t.Logf("%d MiB images differing in 5 places: fetched %d of %d bytes of the object (%.2f%%) in %d requests; reused %d raw bytes, the indexes share %d; %d misses; scan %v, verify %v, total %v",
				len(v2)>>20, st.FetchedCompressed, rel.idx.CompressedSize, 100*ratio, st.Requests, st.Reused,
				shared, st.Misses, st.Scan, st.Verify, st.Elapsed)
			if ratio > 0.05 {
				t.Errorf("fetched %.2f%% of the object, want under 5%%", 100*ratio)
			}
			if got, want := st.Fetched+st.Reused, int64(len(v2)); got != want {
				t.Errorf("fetched %d + reused %d raw bytes, want %d", st.Fetched, st.Reused, want)
			}
			if (st.Misses > 0) != tc.misses {
				t.Errorf("%d misses, want some: %v", st.Misses, tc.misses)
			}
			if !tc.misses && st.Reused < shared {
				t.Errorf("reused %d bytes, the indexes share %d", st.Reused, shared)
			}
		})
	}
}

func TestCorruptObject(t *testing.T) {
	raw := mixed(4, 4<<20)
	rel := publish(t, t.TempDir(), "stable/2.0.0/slot.img.zst", raw, smallParams)
	// A chunk in the middle whose bytes appear nowhere else in the image.
	seen := map[[sha256.Size]byte]int{}
	for _, c := range rel.idx.Chunks {
		seen[c.SHA256]++
	}
	k := len(rel.idx.Chunks) / 2
	for seen[rel.idx.Chunks[k].SHA256] > 1 {
		k++
	}
	c := rel.idx.Chunks[k]
	obj := filepath.Join(rel.dir, filepath.FromSlash(rel.key))
	b, err := os.ReadFile(obj)
	if err != nil {
		t.Fatal(err)
	}
	b[c.CompressedOffset+c.CompressedLength/2] ^= 0x10
	if err := os.WriteFile(obj, b, 0o644); err != nil {
		t.Fatal(err)
	}

	disk := newCrashDisk(len(raw))
	j := FileJournal{Path: filepath.Join(t.TempDir(), "journal")}
	st, err := Apply(context.Background(), Options{
		Source: rel.store, ObjectKey: rel.key, Index: rel.idx, Target: disk, Journal: j,
		SyncEvery: 64 << 10, Retry: noWait(5),
	})
	if !errors.Is(err, chunk.ErrCorrupt) {
		t.Fatalf("Apply of an object with a flipped byte: %v, want chunk.ErrCorrupt", err)
	}
	t.Logf("error: %v", err)
	if msg, want := err.Error(), fmt.Sprintf("chunk %d (raw %d+%d, compressed %d+%d)", k, c.Offset, c.Length, c.CompressedOffset, c.CompressedLength); !strings.Contains(msg, want) || strings.Contains(msg, "\n") {
		t.Errorf("error %q: want one line naming %q", msg, want)
	}
	if st.Refetched != 1 {
		t.Errorf("refetched %d chunks, want the bad one fetched again once", st.Refetched)
	}
	if got := disk.bytes(c.Offset, c.Length); !bytes.Equal(got, make([]byte, c.Length)) {
		t.Errorf("chunk %d was written", k)
	}
	if sha256.Sum256(disk.bytes(0, int64(len(raw)))) == rel.idx.SHA256 {
		t.Errorf("slot matches the image")
	}
	s, err := j.Load()
	if err != nil {
		t.Fatal(err)
	}
	if s.Chunks > k {
		t.Errorf("journal records %d chunks done, chunk %d is bad", s.Chunks, k)
	}
}

func TestNotFoundIsPermanent(t *testing.T) {
	rel := publish(t, t.TempDir(), "stable/1.0.0/slot.img.zst", mixed(5, 1<<20), smallParams)
	st, err := Apply(context.Background(), Options{
		Source: rel.store, ObjectKey: "stable/9.9.9/slot.img.zst", Index: rel.idx,
		Target: newCrashDisk(1 << 20), Retry: noWait(5),
	})
	if !errors.Is(err, source.ErrNotFound) {
		t.Fatalf("Apply of a missing object: %v, want source.ErrNotFound", err)
	}
	if st.Requests != 1 || st.Retries != 0 {
		t.Errorf("%d requests and %d retries, want one request and no retry", st.Requests, st.Retries)
	}
}

// badDisk flips a byte of what is written at flip.
type badDisk struct {
	*crashDisk
	flip int64
}

func (d badDisk) WriteAt(p []byte, off int64) (int, error) {
	if off <= d.flip && d.flip < off+int64(len(p)) {
		p = bytes.Clone(p)
		p[d.flip-off] ^= 1
	}
	return d.crashDisk.WriteAt(p, off)
}

// A disk that does not store what it was given is caught by reading back:
// at once with ReadBack, and otherwise by the next run, which reads back
// the chunks the journal says an earlier run wrote.
func TestSlotMismatchResetsJournal(t *testing.T) {
	raw := mixed(6, 2<<20)
	rel := publish(t, t.TempDir(), "stable/1.0.0/slot.img.zst", raw, smallParams)
	for _, readBack := range []bool{true, false} {
		t.Run(fmt.Sprintf("read-back=%v", readBack), func(t *testing.T) {
			j := FileJournal{Path: filepath.Join(t.TempDir(), "journal")}
			disk := newCrashDisk(len(raw))
			o := Options{Source: rel.store, ObjectKey: rel.key, Index: rel.idx, Target: badDisk{disk, 1 << 20}, Journal: j, ReadBack: readBack}
			_, err := Apply(context.Background(), o)
			if !readBack {
				// Every chunk was right when it was written: this run
				// cannot tell; the next one reads them back.
				if err != nil {
					t.Fatalf("Apply without read-back: %v", err)
				}
				o.Target = disk
				_, err = Apply(context.Background(), o)
			}
			if !errors.Is(err, ErrSlotMismatch) {
				t.Fatalf("Apply to a disk that corrupts a byte: %v, want ErrSlotMismatch", err)
			}
			s, err := j.Load()
			if err != nil {
				t.Fatal(err)
			}
			if want := (State{Index: indexID(t, rel.idx), Size: int64(len(raw))}); s != want {
				t.Errorf("journal after a mismatch: %+v, want %+v", s, want)
			}
			o.Target = disk
			st, err := Apply(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			if st.Resumed {
				t.Errorf("apply after a mismatch resumed")
			}
			if !bytes.Equal(disk.bytes(0, int64(len(raw))), raw) {
				t.Errorf("slot differs from the image")
			}
		})
	}
}

func TestJournalOfAnotherRelease(t *testing.T) {
	raw := mixed(7, 2<<20)
	rel := publish(t, t.TempDir(), "stable/1.0.0/slot.img.zst", raw, smallParams)
	id := indexID(t, rel.idx)
	cs := rel.idx.Chunks
	for _, tc := range []struct {
		name string
		s    State
	}{
		{"another index", State{Index: sha256.Sum256([]byte("another index")), Chunks: 5, Offset: cs[5].Offset, Size: int64(len(raw))}},
		{"another slot", State{Index: id, Target: 1 << 20, Chunks: 5, Offset: cs[5].Offset, Size: int64(len(raw))}},
		{"offset not at a chunk's end", State{Index: id, Chunks: 5, Offset: cs[5].Offset + 1, Size: int64(len(raw))}},
		{"more chunks than the index", State{Index: id, Chunks: len(cs) + 1, Offset: int64(len(raw)), Size: int64(len(raw))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := FileJournal{Path: filepath.Join(t.TempDir(), "journal")}
			if err := j.Save(tc.s); err != nil {
				t.Fatal(err)
			}
			disk := newCrashDisk(len(raw))
			st, err := Apply(context.Background(), Options{Source: rel.store, ObjectKey: rel.key, Index: rel.idx, Target: disk, Journal: j})
			if err != nil {
				t.Fatal(err)
			}
			if st.Resumed || st.Skipped != 0 || st.Fetched+st.Reused != int64(len(raw)) {
				t.Errorf("stats %+v: want a start from scratch", st)
			}
			if !bytes.Equal(disk.bytes(0, int64(len(raw))), raw) {
				t.Errorf("slot differs from the image")
			}
		})
	}
}
