package chunk

import (
	"bytes"
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/twinroot/twinroot/internal/testfuzz"
)

// xzBlock returns n random bytes from r that start with an xz stream
// header, as a block of an xz squashfs image does (random bytes never
// hold a header by chance).
func xzBlock(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	copy(b, xzMagic)
	return b
}

// xzBlocks returns an image made like an xz squashfs image, of blocks of
// the given lengths, and where each block starts.
func xzBlocks(r *rand.Rand, lengths []int) ([]byte, []int64) {
	var img []byte
	var starts []int64
	for _, n := range lengths {
		starts = append(starts, int64(len(img)))
		img = append(img, xzBlock(r, n)...)
	}
	return img, starts
}

// cuts returns where the chunks of raw start.
func cuts(t testing.TB, raw []byte, p Params) []int64 {
	t.Helper()
	var out []int64
	err := Scan(context.Background(), bytes.NewReader(raw), p, func(c Chunk) error {
		out = append(out, c.Offset)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCutXZWithoutHeadersIsRabin(t *testing.T) {
	raw := mixed(21, 8<<20)
	if bytes.Contains(raw, xzMagic) {
		t.Fatal("test data holds an xz header")
	}
	rabin := DefaultParams
	rabin.CutXZ = false
	if got, want := cuts(t, raw, DefaultParams), cuts(t, raw, rabin); !slices.Equal(got, want) {
		t.Errorf("CutXZ without xz headers: %d cuts, the fingerprint alone %d; want the same cuts", len(got), len(want))
	}
}

func TestCutXZCutsAtBlocks(t *testing.T) {
	r := rand.New(rand.NewPCG(22, 0))
	var lengths []int
	for range 200 {
		lengths = append(lengths, 16<<10+r.IntN(120<<10))
	}
	raw, starts := xzBlocks(r, lengths)
	if got := cuts(t, raw, DefaultParams); !slices.Equal(got, starts) {
		t.Errorf("chunks start at %v..., want every block start %v...", got[:min(5, len(got))], starts[:5])
	}
}

func TestCutXZSmallBlocksAndLongStretches(t *testing.T) {
	p := DefaultParams
	r := rand.New(rand.NewPCG(23, 0))
	var lengths []int
	for i := range 300 {
		switch i % 10 {
		case 3:
			lengths = append(lengths, 1<<20+r.IntN(1<<20)) // raw data, no header for a long way
		case 4, 5, 6:
			lengths = append(lengths, 100+r.IntN(8<<10)) // metadata-like blocks
		default:
			lengths = append(lengths, 8<<10+r.IntN(120<<10))
		}
	}
	raw, starts := xzBlocks(r, lengths)
	block := map[int64]bool{}
	for _, s := range starts {
		block[s] = true
	}
	var chunks []Chunk
	if err := Scan(context.Background(), bytes.NewReader(raw), p, func(c Chunk) error {
		chunks = append(chunks, c)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var end int64
	for i, c := range chunks {
		if c.Offset != end {
			t.Fatalf("chunk %d starts at %d, want %d", i, c.Offset, end)
		}
		end += c.Length
		if c.Length > int64(p.MaxSize) || (i < len(chunks)-1 && c.Length < int64(p.MinSize)) {
			t.Errorf("chunk %d: %d bytes, outside %d..%d", i, c.Length, p.MinSize, p.MaxSize)
		}
		// A chunk that does not end at a block start ended where the
		// fingerprint said: no header lay MinSize..MaxSize past its start.
		next := c.Offset + c.Length
		if i < len(chunks)-1 && !block[next] {
			window := raw[c.Offset+int64(p.MinSize) : min(int64(len(raw)), c.Offset+int64(p.MaxSize)+int64(len(xzMagic))-1)]
			if bytes.Contains(window, xzMagic) {
				t.Errorf("chunk %d ends at %d, inside a block, though a header lies within its reach", i, next)
			}
		}
	}
	if end != int64(len(raw)) {
		t.Errorf("chunks end at %d, image at %d", end, len(raw))
	}
	// Every block of MinSize to MaxSize-MinSize bytes ends a chunk.
	cut := map[int64]bool{}
	for _, c := range chunks {
		cut[c.Offset] = true
	}
	for i, n := range lengths[:len(lengths)-1] {
		if n >= int(p.MinSize) && n <= int(p.MaxSize-p.MinSize) && !cut[starts[i+1]] {
			t.Errorf("block %d (%d bytes) does not end a chunk", i, n)
		}
	}
}

// TestCutXZLocal is why CutXZ exists: a block that changes (and changes
// length) changes its own chunk and no other, where the fingerprint's
// chunks straddle it and its neighbours.
func TestCutXZLocal(t *testing.T) {
	r := rand.New(rand.NewPCG(24, 0))
	blocks := make([][]byte, 100)
	for i := range blocks {
		blocks[i] = xzBlock(r, 20<<10+r.IntN(100<<10))
	}
	a := bytes.Join(blocks, nil)
	blocks[50] = xzBlock(r, len(blocks[50])+3000)
	b := bytes.Join(blocks, nil)

	ia, _ := buildBytes(t, a, DefaultParams, 2)
	ib, _ := buildBytes(t, b, DefaultParams, 2)
	nraw, _ := newBytes(ia, ib)
	if got, want := nraw, int64(len(blocks[50])); got != want {
		t.Errorf("CutXZ: %d new raw bytes, want the changed block's %d", got, want)
	}
	rabin := DefaultParams
	rabin.CutXZ = false
	ra, _ := buildBytes(t, a, rabin, 2)
	rb, _ := buildBytes(t, b, rabin, 2)
	rraw, _ := newBytes(ra, rb)
	t.Logf("one block of %d bytes changed: CutXZ fetches %d bytes, the fingerprint alone %d", len(blocks[50]), nraw, rraw)
}

func TestCutXZInIndex(t *testing.T) {
	for _, cut := range []bool{false, true} {
		p := DefaultParams
		p.CutXZ = cut
		idx, _ := buildBytes(t, mixed(26, 1<<20), p, 1)
		b, err := idx.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if got, want := b[12] == 1, cut; got != want {
			t.Errorf("CutXZ %v: header flags %#x", cut, b[12:16])
		}
		back, err := ParseIndex(b)
		if err != nil {
			t.Fatal(err)
		}
		if back.Params != p {
			t.Errorf("ParseIndex gives parameters %+v, want %+v", back.Params, p)
		}
	}
}

// FuzzCutXZ: whatever the bytes, CutXZ chunks tile them within the sizes,
// and Scan and Build cut them alike.
func FuzzCutXZ(f *testing.F) {
	p := Params{Polynomial: Polynomial, MinSize: 1 << 10, MaxSize: 4 << 10, AverageBits: 10, CutXZ: true}
	img, _ := xzBlocks(rand.New(rand.NewPCG(27, 0)), []int{500, 1500, 3000, 5000, 800, 2000})
	testfuzz.Add(f, "xz-blocks", img)
	testfuzz.Add(f, "xz-magic-repeated", bytes.Repeat(xzMagic, 2000))
	testfuzz.Add(f, "empty", []byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		var scanned []Chunk
		if err := Scan(context.Background(), bytes.NewReader(raw), p, func(c Chunk) error {
			scanned = append(scanned, c)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		idx, _ := buildBytes(t, raw, p, 1)
		if err := idx.check(); err != nil {
			t.Fatal(err)
		}
		if len(scanned) != len(idx.Chunks) {
			t.Fatalf("Scan cut %d chunks, Build %d", len(scanned), len(idx.Chunks))
		}
		for i, c := range scanned {
			if b := idx.Chunks[i]; c.Offset != b.Offset || c.Length != b.Length || c.SHA256 != b.SHA256 {
				t.Fatalf("chunk %d: Scan %d+%d, Build %d+%d", i, c.Offset, c.Length, b.Offset, b.Length)
			}
		}
	})
}
