package chunk

import (
	"encoding/binary"
	"fmt"
)

// Sizes of the binary index (doc.go).
const (
	headerSize = 96
	entrySize  = 56
	version    = 1
	// flagCutXZ in the header's flags is Params.CutXZ.
	flagCutXZ = 1
	// maxOffset bounds every offset and size before it becomes an int64;
	// MaxChunks chunks of MaxChunkSize stay far below it.
	maxOffset = 1 << 62
)

var magic = [8]byte{'T', 'W', 'R', 'I', 'N', 'D', 'E', 'X'}

// maxFrame bounds the zstd frame of n raw bytes: raw blocks cost 3 bytes per
// 128 KiB, plus a frame header and checksum of at most 22 bytes.
func maxFrame(n int64) int64 { return n + n/256 + 1024 }

// MarshalBinary encodes the index as doc.go describes. It refuses an index
// ParseIndex would refuse, so what is written can always be read back.
func (idx *Index) MarshalBinary() ([]byte, error) {
	if err := idx.check(); err != nil {
		return nil, err
	}
	b := make([]byte, headerSize, headerSize+entrySize*len(idx.Chunks))
	le := binary.LittleEndian
	copy(b[0:8], magic[:])
	le.PutUint32(b[8:], version)
	if idx.Params.CutXZ {
		le.PutUint32(b[12:], flagCutXZ)
	}
	le.PutUint64(b[16:], idx.Params.Polynomial)
	le.PutUint32(b[24:], idx.Params.MinSize)
	le.PutUint32(b[28:], idx.Params.MaxSize)
	le.PutUint32(b[32:], idx.Params.AverageBits)
	le.PutUint64(b[40:], uint64(idx.Size))
	le.PutUint64(b[48:], uint64(idx.CompressedSize))
	le.PutUint64(b[56:], uint64(len(idx.Chunks)))
	copy(b[64:96], idx.SHA256[:])
	for _, c := range idx.Chunks {
		var e [entrySize]byte
		le.PutUint64(e[0:], uint64(c.Offset))
		le.PutUint64(e[8:], uint64(c.CompressedOffset))
		le.PutUint32(e[16:], uint32(c.Length))
		le.PutUint32(e[20:], uint32(c.CompressedLength))
		copy(e[24:], c.SHA256[:])
		b = append(b, e[:]...)
	}
	return b, nil
}

// UnmarshalBinary is ParseIndex into idx.
func (idx *Index) UnmarshalBinary(b []byte) error {
	p, err := ParseIndex(b)
	if err != nil {
		return err
	}
	*idx = *p
	return nil
}

// ParseIndex decodes and checks an index. Every error wraps ErrMalformed and
// names the field or the chunk that breaks the format.
func ParseIndex(b []byte) (*Index, error) {
	if len(b) < headerSize {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrMalformed, len(b), headerSize)
	}
	le := binary.LittleEndian
	if [8]byte(b[0:8]) != magic {
		return nil, fmt.Errorf("%w: magic %q, want %q", ErrMalformed, b[0:8], magic[:])
	}
	if v := le.Uint32(b[8:]); v != version {
		return nil, fmt.Errorf("%w: format version %d, this reader knows %d", ErrMalformed, v, version)
	}
	flags := le.Uint32(b[12:])
	if r := le.Uint32(b[36:]); flags&^flagCutXZ != 0 || r != 0 {
		return nil, fmt.Errorf("%w: flags %#x (known %#x) and reserved %#x must be zero", ErrMalformed, flags&^flagCutXZ, flagCutXZ, r)
	}
	// Counts and sizes are checked as unsigned before any conversion or
	// allocation, so a huge or negative-looking value is refused, not used.
	count := le.Uint64(b[56:])
	if count > MaxChunks {
		return nil, fmt.Errorf("%w: %d chunks, more than the limit of %d", ErrMalformed, count, MaxChunks)
	}
	if want := headerSize + entrySize*count; uint64(len(b)) != want {
		return nil, fmt.Errorf("%w: %d bytes, %d chunks need exactly %d", ErrMalformed, len(b), count, want)
	}
	size, csize := le.Uint64(b[40:]), le.Uint64(b[48:])
	if size > maxOffset || csize > maxOffset {
		return nil, fmt.Errorf("%w: sizes %d raw and %d compressed out of range", ErrMalformed, size, csize)
	}
	idx := &Index{
		Params: Params{
			Polynomial:  le.Uint64(b[16:]),
			MinSize:     le.Uint32(b[24:]),
			MaxSize:     le.Uint32(b[28:]),
			AverageBits: le.Uint32(b[32:]),
			CutXZ:       flags&flagCutXZ != 0,
		},
		Size:           int64(size),
		CompressedSize: int64(csize),
		SHA256:         [32]byte(b[64:96]),
		Chunks:         make([]Chunk, count),
	}
	for i := range idx.Chunks {
		e := b[headerSize+entrySize*i:]
		off, coff := le.Uint64(e[0:]), le.Uint64(e[8:])
		if off > maxOffset || coff > maxOffset {
			return nil, fmt.Errorf("%w: chunk %d: offsets %d and %d out of range", ErrMalformed, i, off, coff)
		}
		idx.Chunks[i] = Chunk{
			Offset:           int64(off),
			CompressedOffset: int64(coff),
			Length:           int64(le.Uint32(e[16:])),
			CompressedLength: int64(le.Uint32(e[20:])),
			SHA256:           [32]byte(e[24:56]),
		}
	}
	if err := idx.check(); err != nil {
		return nil, err
	}
	return idx, nil
}

// check enforces the rules of doc.go on a decoded or built index.
func (idx *Index) check() error {
	p := idx.Params
	if err := p.Validate(); err != nil {
		return fmt.Errorf("%w: chunker parameters: %v", ErrMalformed, err)
	}
	if len(idx.Chunks) > MaxChunks {
		return fmt.Errorf("%w: %d chunks, more than the limit of %d", ErrMalformed, len(idx.Chunks), MaxChunks)
	}
	var raw, comp int64
	for i, c := range idx.Chunks {
		last := i == len(idx.Chunks)-1
		switch {
		case c.Offset != raw:
			return fmt.Errorf("%w: chunk %d: raw offset %d, want %d (chunks tile the image in order)", ErrMalformed, i, c.Offset, raw)
		case c.CompressedOffset != comp:
			return fmt.Errorf("%w: chunk %d: compressed offset %d, want %d (frames tile the object in order)", ErrMalformed, i, c.CompressedOffset, comp)
		case c.Length < 1 || c.Length > int64(p.MaxSize) || (!last && c.Length < int64(p.MinSize)):
			return fmt.Errorf("%w: chunk %d: raw length %d outside %d..%d", ErrMalformed, i, c.Length, p.MinSize, p.MaxSize)
		case c.CompressedLength < 1 || c.CompressedLength > maxFrame(c.Length):
			return fmt.Errorf("%w: chunk %d: compressed length %d outside 1..%d", ErrMalformed, i, c.CompressedLength, maxFrame(c.Length))
		}
		raw += c.Length
		comp += c.CompressedLength
	}
	if raw != idx.Size || comp != idx.CompressedSize {
		return fmt.Errorf("%w: chunks sum to %d raw and %d compressed bytes, header says %d and %d", ErrMalformed, raw, comp, idx.Size, idx.CompressedSize)
	}
	return nil
}
