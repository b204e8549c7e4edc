package chunk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/twinroot/twinroot/internal/testfuzz"
)

// smallIndex is a marshalled index of 40 made-up chunks: cheap enough for
// every fuzz worker to make.
func smallIndex(t testing.TB) []byte {
	idx := &Index{Params: Params{Polynomial: Polynomial, MinSize: 16 << 10, MaxSize: 128 << 10, AverageBits: 14}}
	r := rand.New(rand.NewPCG(10, 0))
	for i := range 40 {
		c := Chunk{Offset: idx.Size, Length: int64(16<<10 + r.IntN(112<<10)), CompressedOffset: idx.CompressedSize}
		c.CompressedLength = 1 + r.Int64N(c.Length)
		c.SHA256[0], c.SHA256[31] = byte(i), byte(c.Length)
		idx.Chunks = append(idx.Chunks, c)
		idx.Size += c.Length
		idx.CompressedSize += c.CompressedLength
	}
	b, err := idx.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseIndexRefuses(t *testing.T) {
	good := smallIndex(t)
	if _, err := ParseIndex(good); err != nil {
		t.Fatal(err)
	}
	n := (len(good) - headerSize) / entrySize
	le := binary.LittleEndian
	entry := func(i, field int) int { return headerSize + entrySize*i + field }
	tests := []struct {
		name   string
		edit   func(b []byte) []byte
		reason string
	}{
		{"empty", func(b []byte) []byte { return nil }, "shorter than"},
		{"magic", func(b []byte) []byte { b[0] = 'X'; return b }, "magic"},
		{"version", func(b []byte) []byte { le.PutUint32(b[8:], 2); return b }, "version 2"},
		{"flags", func(b []byte) []byte { b[12] = 2; return b }, "must be zero"},
		{"reserved", func(b []byte) []byte { b[36] = 1; return b }, "must be zero"},
		{"polynomial", func(b []byte) []byte { le.PutUint64(b[16:], Polynomial+2); return b }, "polynomial"},
		{"min above max", func(b []byte) []byte { le.PutUint32(b[24:], 1<<20); return b }, "chunk sizes"},
		{"max too big", func(b []byte) []byte { le.PutUint32(b[28:], 1<<30); return b }, "chunk sizes"},
		{"average bits", func(b []byte) []byte { le.PutUint32(b[32:], 40); return b }, "average bits"},
		{"huge count", func(b []byte) []byte { le.PutUint64(b[56:], 1<<62); return b }, "more than the limit"},
		{"count one more", func(b []byte) []byte { le.PutUint64(b[56:], uint64(n+1)); return b }, "need exactly"},
		{"trailing byte", func(b []byte) []byte { return append(b, 0) }, "need exactly"},
		{"missing byte", func(b []byte) []byte { return b[:len(b)-1] }, "need exactly"},
		{"raw size", func(b []byte) []byte { le.PutUint64(b[40:], le.Uint64(b[40:])+1); return b }, "header says"},
		{"compressed size", func(b []byte) []byte { le.PutUint64(b[48:], le.Uint64(b[48:])-1); return b }, "header says"},
		{"huge size", func(b []byte) []byte { le.PutUint64(b[40:], 1<<63); return b }, "out of range"},
		{"gap", func(b []byte) []byte { le.PutUint64(b[entry(3, 0):], le.Uint64(b[entry(3, 0):])+1); return b }, "chunk 3: raw offset"},
		{"overlap", func(b []byte) []byte { le.PutUint64(b[entry(3, 8):], le.Uint64(b[entry(3, 8):])-1); return b }, "chunk 3: compressed offset"},
		{"negative offset", func(b []byte) []byte { le.PutUint64(b[entry(2, 0):], 1<<63); return b }, "chunk 2: offsets"},
		{"zero length", func(b []byte) []byte { le.PutUint32(b[entry(n-1, 16):], 0); return b }, "raw length 0"},
		{"below min", func(b []byte) []byte { le.PutUint32(b[entry(1, 16):], 100); return b }, "chunk 1: raw length 100"},
		{"above max", func(b []byte) []byte { le.PutUint32(b[entry(1, 16):], 1<<20); return b }, "chunk 1: raw length"},
		{"frame too big", func(b []byte) []byte { le.PutUint32(b[entry(0, 20):], 1<<30); return b }, "chunk 0: compressed length"},
		{"swapped chunks", func(b []byte) []byte {
			e := bytes.Clone(b[entry(1, 0):entry(2, 0)])
			copy(b[entry(1, 0):], b[entry(2, 0):entry(3, 0)])
			copy(b[entry(2, 0):], e)
			return b
		}, "chunk 1:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseIndex(tt.edit(bytes.Clone(good)))
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("ParseIndex = %v, want ErrMalformed saying %q", err, tt.reason)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestMarshalRefusesWhatParseRefuses(t *testing.T) {
	idx, err := ParseIndex(smallIndex(t))
	if err != nil {
		t.Fatal(err)
	}
	idx.Chunks[1].Offset++
	if _, err := idx.MarshalBinary(); !errors.Is(err, ErrMalformed) {
		t.Errorf("MarshalBinary of a broken index = %v, want ErrMalformed", err)
	}
}

// FuzzParseIndex: ParseIndex never panics or allocates beyond its input, and
// whatever it accepts marshals back to the same bytes (one encoding per
// index).
func FuzzParseIndex(f *testing.F) {
	good := smallIndex(f)
	testfuzz.Add(f, "index", good)
	testfuzz.Add(f, "header-only", good[:headerSize])
	testfuzz.Add(f, "one-entry", good[:headerSize+entrySize])
	testfuzz.Add(f, "magic-only", []byte("TWRINDEX"))
	f.Fuzz(func(t *testing.T, b []byte) {
		idx, err := ParseIndex(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		back, err := idx.MarshalBinary()
		if err != nil {
			t.Fatalf("accepted index does not marshal: %v", err)
		}
		if !bytes.Equal(back, b) {
			t.Fatal("accepted index marshals to other bytes")
		}
	})
}
