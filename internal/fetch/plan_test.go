package fetch

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/twinroot/twinroot/internal/chunk"
	"github.com/twinroot/twinroot/internal/source"
)

func TestSpans(t *testing.T) {
	// Ten chunks of 100 compressed bytes each.
	idx := &chunk.Index{}
	for i := range 10 {
		idx.Chunks = append(idx.Chunks, chunk.Chunk{CompressedOffset: int64(100 * i), CompressedLength: 100})
	}
	// l marks a chunk copied locally, f one fetched.
	for _, tc := range []struct {
		name           string
		plan           string
		start          int
		maxGap, maxReq int64
		want           []span
	}{
		{"all fetched, one request", "ffffffffff", 0, 0, 1000, []span{{0, 9}}},
		{"capped requests", "ffffffffff", 0, 0, 300, []span{{0, 2}, {3, 5}, {6, 8}, {9, 9}}},
		{"resume skips", "ffffffffff", 4, 0, 1000, []span{{4, 9}}},
		{"gap too wide", "fllfffllff", 0, 100, 1000, []span{{0, 0}, {3, 5}, {8, 9}}},
		{"gap bridged", "fllfffllff", 0, 200, 1000, []span{{0, 9}}},
		{"never bridge", "flfflf", 0, -1, 1000, []span{{0, 0}, {2, 3}, {5, 5}}},
		{"nothing fetched", "llllllllll", 0, 200, 1000, nil},
		{"chunk larger than the cap", "ffllf", 0, 200, 50, []span{{0, 0}, {1, 1}, {4, 4}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := idx.Chunks[:len(tc.plan)]
			r := &run{idx: &chunk.Index{Chunks: cs}, start: tc.start, o: Options{MaxGap: tc.maxGap, MaxRequest: tc.maxReq}}
			r.plan = make([]origin, len(cs))
			for i, k := range tc.plan {
				if k == 'l' {
					r.plan[i].kind = fromRunning
				}
			}
			if diff := cmp.Diff(tc.want, r.spans(), cmp.AllowUnexported(span{})); diff != "" {
				t.Errorf("spans of %s (-want +got):\n%s", tc.plan, diff)
			}
		})
	}
}

// generator yields n bytes of mixed content, 1 MiB at a time, so a large
// image never sits in memory.
type generator struct {
	n, seed uint64
	buf     []byte
}

func (g *generator) Read(p []byte) (int, error) {
	if len(g.buf) == 0 {
		if g.n == 0 {
			return 0, io.EOF
		}
		k := min(g.n, 1<<20)
		g.buf = mixed(g.seed, int(k))
		g.seed++
		g.n -= k
	}
	n := copy(p, g.buf)
	g.buf = g.buf[n:]
	return n, nil
}

// TestMemoryStaysFlat applies a 96 MiB image from a file store to a disk
// file and samples the heap while it runs.
func TestMemoryStaysFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 96 MiB image")
	}
	const size = 96 << 20
	dir := t.TempDir()
	key := "stable/1.0.0/slot.img.zst"
	if err := os.MkdirAll(filepath.Join(dir, "stable/1.0.0"), 0o755); err != nil {
		t.Fatal(err)
	}
	obj, err := os.Create(filepath.Join(dir, key))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := chunk.Build(context.Background(), &generator{n: size, seed: 20}, obj)
	if err != nil {
		t.Fatal(err)
	}
	obj.Close()
	src, err := source.Open(context.Background(), "file://"+dir, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	disk, err := os.Create(filepath.Join(t.TempDir(), "disk"))
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapInuse, ms.HeapInuse
	var n int
	st, err := Apply(context.Background(), Options{
		Source: src, ObjectKey: key, Index: idx, Target: disk,
		Journal: FileJournal{Path: filepath.Join(t.TempDir(), "journal")},
		Progress: func(done, total int64) {
			if n++; n%32 == 0 {
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	grew := int64(peak) - int64(base)
	t.Logf("%d MiB image (%d MiB compressed, %d chunks): heap in use grew by %.1f MiB at most; %+v",
		size>>20, idx.CompressedSize>>20, len(idx.Chunks), float64(grew)/(1<<20), st)
	if grew > 24<<20 {
		t.Errorf("heap grew by %d MiB during the apply, want a few MiB whatever the image size", grew>>20)
	}
	got := make([]byte, 1<<20)
	if _, err := disk.ReadAt(got, size-1<<20); err != nil {
		t.Fatal(err)
	}
	if want := mixed(20+size>>20-1, 1<<20); !bytes.Equal(got, want) {
		t.Errorf("last MiB of the slot differs from the image")
	}
}

// BenchmarkApply applies a 64 MiB image from a file store to a disk file:
// from scratch (every chunk fetched), and as a delta from a running slot
// that differs in five places, found by a scan or from its index.
func BenchmarkApply(b *testing.B) {
	const size = 64 << 20
	v1 := mixed(21, size)
	v2 := edit(v1, 22)
	dir := b.TempDir()
	old := publish(b, dir, "stable/1.0.0/slot.img.zst", v1, chunk.DefaultParams)
	rel := publish(b, dir, "stable/1.1.0/slot.img.zst", v2, chunk.DefaultParams)
	disk, err := os.Create(filepath.Join(b.TempDir(), "disk"))
	if err != nil {
		b.Fatal(err)
	}
	defer disk.Close()
	for _, bc := range []struct {
		name    string
		running []byte
		idx     *chunk.Index
	}{{"full", nil, nil}, {"delta-scan", v1, nil}, {"delta-index", v1, old.idx}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(v2)))
			for b.Loop() {
				o := Options{Source: rel.store, ObjectKey: rel.key, Index: rel.idx, Target: disk, RunningIndex: bc.idx}
				if bc.running != nil {
					o.Running, o.RunningSize = bytes.NewReader(bc.running), int64(len(bc.running))
				}
				if _, err := Apply(context.Background(), o); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
