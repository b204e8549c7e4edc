package chunk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/restic/chunker"

	"github.com/twinroot/twinroot/internal/testroot"

	"github.com/twinroot/twinroot/internal/testfuzz"
)

// mixed returns n deterministic bytes: stretches of random bytes, of
// English-like text and of zeros, as in a filesystem image.
func mixed(seed uint64, n int) []byte {
	return testroot.Mixed(seed, n, testroot.MixOptions{Spread: 256 << 10})
}

func buildBytes(t *testing.T, raw []byte, p Params, workers int) (*Index, []byte) {
	t.Helper()
	var zst bytes.Buffer
	idx, err := build(context.Background(), bytes.NewReader(raw), &zst, p, workers)
	if err != nil {
		t.Fatal(err)
	}
	return idx, zst.Bytes()
}

func TestPolynomial(t *testing.T) {
	if p := chunker.Pol(Polynomial); p.Deg() != 53 || !p.Irreducible() {
		t.Errorf("Polynomial %#x: degree %d, irreducible %v; want 53, true", uint64(p), p.Deg(), p.Irreducible())
	}
	if err := DefaultParams.Validate(); err != nil {
		t.Error(err)
	}
}

func TestBuildRoundTrip(t *testing.T) {
	raw := mixed(1, 6<<20+12345)
	idx, zst := buildBytes(t, raw, DefaultParams, 2)

	if got, want := idx.Size, int64(len(raw)); got != want {
		t.Errorf("Size = %d, want %d", got, want)
	}
	if got, want := idx.SHA256, sha256.Sum256(raw); got != want {
		t.Errorf("SHA256 = %x, want %x", got, want)
	}
	if got, want := idx.CompressedSize, int64(len(zst)); got != want {
		t.Errorf("CompressedSize = %d, want %d", got, want)
	}
	if len(idx.Chunks) < 10 {
		t.Errorf("%d chunks for %d bytes, want at least 10", len(idx.Chunks), len(raw))
	}
	t.Logf("%d bytes -> %d chunks, %d compressed", len(raw), len(idx.Chunks), len(zst))

	// Every chunk decodes alone from its byte range, as a Range request
	// would fetch it.
	for i, c := range idx.Chunks {
		data, err := DecodeChunk(c, zst[c.CompressedOffset:c.CompressedOffset+c.CompressedLength])
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		if !bytes.Equal(data, raw[c.Offset:c.Offset+c.Length]) {
			t.Fatalf("chunk %d decodes to other bytes than raw[%d:+%d]", i, c.Offset, c.Length)
		}
	}

	b, err := idx.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(b), headerSize+entrySize*len(idx.Chunks); got != want {
		t.Errorf("index is %d bytes, want %d", got, want)
	}
	back, err := ParseIndex(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(idx, back); diff != "" {
		t.Errorf("ParseIndex(MarshalBinary) (-want +got):\n%s", diff)
	}
	if err := VerifyObject(context.Background(), back, bytes.NewReader(zst), bytes.NewReader(raw)); err != nil {
		t.Fatal(err)
	}

	// The object is an ordinary zstd stream for the zstd tool.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "slot.img.zst"), zst, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("zstd", "-q", "-d", filepath.Join(dir, "slot.img.zst"), "-o", filepath.Join(dir, "slot.img")).CombinedOutput()
	if err != nil {
		t.Fatalf("zstd -d: %v\n%s", err, out)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "slot.img")); err != nil || !bytes.Equal(got, raw) {
		t.Errorf("zstd -d gives %d bytes (%v), not the raw image", len(got), err)
	}
}

func TestBuildEmpty(t *testing.T) {
	idx, zst := buildBytes(t, nil, DefaultParams, 1)
	if len(idx.Chunks) != 0 || len(zst) != 0 || idx.SHA256 != sha256.Sum256(nil) {
		t.Errorf("empty image: %d chunks, %d object bytes, sum %x", len(idx.Chunks), len(zst), idx.SHA256)
	}
	b, err := idx.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseIndex(b); err != nil {
		t.Error(err)
	}
}

// The same image gives the same index and object bytes however many
// compressors run.
func TestBuildReproducible(t *testing.T) {
	raw := mixed(2, 5<<20)
	idx1, zst1 := buildBytes(t, raw, DefaultParams, 1)
	idx2, zst2 := buildBytes(t, raw, DefaultParams, 4)
	b1, err1 := idx1.MarshalBinary()
	b2, err2 := idx2.MarshalBinary()
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1, b2) {
		t.Error("two builds give different indexes")
	}
	if !bytes.Equal(zst1, zst2) {
		t.Error("two builds give different objects")
	}
}

func TestBuildCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Build(ctx, bytes.NewReader(mixed(3, 1<<20)), new(bytes.Buffer)); !errors.Is(err, context.Canceled) {
		t.Errorf("Build with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestBuildWriteError(t *testing.T) {
	w := failWriter{}
	if _, err := Build(context.Background(), bytes.NewReader(mixed(3, 4<<20)), w); !errors.Is(err, errDiskFull) {
		t.Errorf("Build to a failing writer = %v, want errDiskFull", err)
	}
}

var errDiskFull = errors.New("disk full")

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errDiskFull }

func TestScanMatchesBuild(t *testing.T) {
	raw := mixed(4, 3<<20)
	idx, _ := buildBytes(t, raw, DefaultParams, 2)
	var got []Chunk
	err := Scan(context.Background(), bytes.NewReader(raw), idx.Params, func(c Chunk) error {
		got = append(got, c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(idx.Chunks) {
		t.Fatalf("Scan found %d chunks, Build %d", len(got), len(idx.Chunks))
	}
	for i, c := range got {
		b := idx.Chunks[i]
		if c.Offset != b.Offset || c.Length != b.Length || c.SHA256 != b.SHA256 {
			t.Errorf("chunk %d: Scan %d+%d %x, Build %d+%d %x", i, c.Offset, c.Length, c.SHA256[:4], b.Offset, b.Length, b.SHA256[:4])
		}
	}
}

func TestVerifyObjectNamesTheChunk(t *testing.T) {
	raw := mixed(5, 4<<20)
	idx, zst := buildBytes(t, raw, DefaultParams, 2)
	if len(idx.Chunks) < 8 {
		t.Fatalf("only %d chunks", len(idx.Chunks))
	}
	const victim = 5
	c := idx.Chunks[victim]
	ctx := context.Background()

	t.Run("object byte", func(t *testing.T) {
		bad := bytes.Clone(zst)
		bad[c.CompressedOffset+c.CompressedLength/2] ^= 0x40
		err := VerifyObject(ctx, idx, bytes.NewReader(bad), nil)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "chunk 5 ") {
			t.Errorf("VerifyObject = %v, want ErrCorrupt naming chunk 5", err)
		}
	})
	t.Run("index hash byte", func(t *testing.T) {
		b, _ := idx.MarshalBinary()
		b[headerSize+entrySize*victim+24+7] ^= 1
		bad, err := ParseIndex(b)
		if err != nil {
			t.Fatal(err) // a hash byte is not structure: only the object can tell
		}
		err = VerifyObject(ctx, bad, bytes.NewReader(zst), nil)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "chunk 5 ") {
			t.Errorf("VerifyObject = %v, want ErrCorrupt naming chunk 5", err)
		}
	})
	t.Run("index length byte", func(t *testing.T) {
		b, _ := idx.MarshalBinary()
		b[headerSize+entrySize*victim+16] ^= 1
		_, err := ParseIndex(b)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "chunk 5:") && !strings.Contains(err.Error(), "chunk 6:") {
			t.Errorf("ParseIndex = %v, want ErrMalformed naming chunk 5 or 6", err)
		}
	})
	t.Run("raw image byte", func(t *testing.T) {
		bad := bytes.Clone(raw)
		at := c.Offset + 1000
		bad[at] ^= 1
		err := VerifyObject(ctx, idx, bytes.NewReader(zst), bytes.NewReader(bad))
		if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "chunk 5 ") || !strings.Contains(err.Error(), fmt.Sprintf("byte %d ", at)) {
			t.Errorf("VerifyObject = %v, want ErrMismatch naming chunk 5 and byte %d", err, at)
		}
	})
	t.Run("raw image longer", func(t *testing.T) {
		err := VerifyObject(ctx, idx, bytes.NewReader(zst), bytes.NewReader(append(bytes.Clone(raw), 0)))
		if !errors.Is(err, ErrMismatch) {
			t.Errorf("VerifyObject = %v, want ErrMismatch", err)
		}
	})
	t.Run("raw image shorter", func(t *testing.T) {
		err := VerifyObject(ctx, idx, bytes.NewReader(zst), bytes.NewReader(raw[:len(raw)-1]))
		if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "image ends at") {
			t.Errorf("VerifyObject = %v, want ErrMismatch (image ends)", err)
		}
	})
	t.Run("object truncated", func(t *testing.T) {
		err := VerifyObject(ctx, idx, bytes.NewReader(zst[:len(zst)-1]), nil)
		last := len(idx.Chunks) - 1
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), fmt.Sprintf("chunk %d ", last)) {
			t.Errorf("VerifyObject = %v, want ErrCorrupt naming chunk %d", err, last)
		}
	})
	t.Run("object with trailing bytes", func(t *testing.T) {
		err := VerifyObject(ctx, idx, bytes.NewReader(append(bytes.Clone(zst), 0)), nil)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("VerifyObject = %v, want ErrCorrupt", err)
		}
	})
	t.Run("image SHA-256", func(t *testing.T) {
		bad := *idx
		bad.SHA256[0] ^= 1
		if err := VerifyObject(ctx, &bad, bytes.NewReader(zst), nil); !errors.Is(err, ErrCorrupt) {
			t.Errorf("VerifyObject = %v, want ErrCorrupt", err)
		}
	})
}

func TestDecodeChunkRefuses(t *testing.T) {
	raw := mixed(6, 512<<10)
	idx, zst := buildBytes(t, raw, DefaultParams, 1)
	c := idx.Chunks[0]
	frame := zst[:c.CompressedLength]
	tests := []struct {
		name  string
		c     Chunk
		frame []byte
	}{
		{"short frame", c, frame[:len(frame)-1]},
		{"claims fewer bytes", Chunk{Length: c.Length - 1, CompressedLength: c.CompressedLength, SHA256: c.SHA256}, frame},
		{"claims more bytes", Chunk{Length: c.Length + 1, CompressedLength: c.CompressedLength, SHA256: c.SHA256}, frame},
		{"other hash", Chunk{Length: c.Length, CompressedLength: c.CompressedLength}, frame},
		{"not zstd", c, bytes.Repeat([]byte{0xAA}, len(frame))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeChunk(tt.c, tt.frame); !errors.Is(err, ErrCorrupt) {
				t.Errorf("DecodeChunk = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestShared(t *testing.T) {
	a := mixed(7, 4<<20)
	// b: a with 100 bytes inserted in the middle, which shifts everything
	// after it.
	b := append(append(bytes.Clone(a[:2<<20]), mixed(8, 100)...), a[2<<20:]...)
	ia, _ := buildBytes(t, a, DefaultParams, 2)
	ib, _ := buildBytes(t, b, DefaultParams, 2)
	shared := Shared(ia, ib)
	if shared > ib.Size || float64(shared) < 0.8*float64(ib.Size) {
		t.Errorf("Shared = %d of %d bytes after a 100-byte insertion, want at least 80%%", shared, ib.Size)
	}
	if got := Shared(ia, ia); got != ia.Size {
		t.Errorf("Shared(a, a) = %d, want %d", got, ia.Size)
	}
}

func BenchmarkBuild(b *testing.B) {
	raw := mixed(11, 64<<20)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := Build(context.Background(), bytes.NewReader(raw), io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkScan(b *testing.B) {
	raw := mixed(11, 64<<20)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if err := Scan(context.Background(), bytes.NewReader(raw), DefaultParams, func(Chunk) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyObject(b *testing.B) {
	raw := mixed(11, 64<<20)
	var zst bytes.Buffer
	idx, err := Build(context.Background(), bytes.NewReader(raw), &zst)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if err := VerifyObject(context.Background(), idx, bytes.NewReader(zst.Bytes()), bytes.NewReader(raw)); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzDecodeChunk: a frame from the network never panics the decoder, and
// is accepted only when it decodes to exactly the indexed chunk.
func FuzzDecodeChunk(f *testing.F) {
	raw := mixed(12, 40<<10)
	var zst bytes.Buffer
	idx, err := build(f.Context(), bytes.NewReader(raw), &zst, DefaultParams, 1)
	if err != nil {
		f.Fatal(err)
	}
	c := idx.Chunks[0]
	testfuzz.Add(f, "first-chunk", zst.Bytes()[:c.CompressedLength])
	testfuzz.Add(f, "zstd-magic", []byte{0x28, 0xb5, 0x2f, 0xfd})
	f.Fuzz(func(t *testing.T, frame []byte) {
		c := c
		c.CompressedLength = int64(len(frame))
		data, err := DecodeChunk(c, frame)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if !bytes.Equal(data, raw[:c.Length]) {
			t.Fatal("accepted a frame that decodes to other bytes")
		}
	})
}
