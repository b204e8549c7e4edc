package chunk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
)

// VerifyObject checks a compressed object against its index: every frame
// decompresses to its chunk's length and SHA-256, the chunks together hash to
// the index's image SHA-256, and the object has no bytes after the last
// frame. When raw is not nil it must also be, byte for byte, the
// concatenation of the chunks. The error names the first chunk and offset
// that is wrong; it wraps ErrCorrupt (object) or ErrMismatch (raw image).
func VerifyObject(ctx context.Context, idx *Index, zst io.ReaderAt, raw io.Reader) error {
	if err := idx.check(); err != nil {
		return err
	}
	var frame, data, want []byte
	whole := sha256.New()
	for i, c := range idx.Chunks {
		if err := ctx.Err(); err != nil {
			return err
		}
		where := fmt.Sprintf("chunk %d (raw %d+%d, compressed %d+%d)", i, c.Offset, c.Length, c.CompressedOffset, c.CompressedLength)
		frame = grow(frame, c.CompressedLength)
		if n, err := zst.ReadAt(frame, c.CompressedOffset); n < len(frame) {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("%w: %s: object ends at %d", ErrCorrupt, where, c.CompressedOffset+int64(n))
			}
			return fmt.Errorf("%s: read object: %w", where, err)
		}
		var err error
		if data, err = AppendChunk(data[:0], c, frame); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		whole.Write(data)
		if raw == nil {
			continue
		}
		want = grow(want, c.Length)
		if n, err := io.ReadFull(raw, want); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("%w: %s: image ends at %d", ErrMismatch, where, c.Offset+int64(n))
			}
			return fmt.Errorf("%s: read image: %w", where, err)
		}
		if !bytes.Equal(want, data) {
			at := c.Offset
			for j := range want {
				if want[j] != data[j] {
					at += int64(j)
					break
				}
			}
			return fmt.Errorf("%w: %s: image byte %d differs", ErrMismatch, where, at)
		}
	}
	if sum := whole.Sum(nil); !bytes.Equal(sum, idx.SHA256[:]) {
		return fmt.Errorf("%w: chunks hash to %x, the index's image SHA-256 is %x", ErrCorrupt, sum, idx.SHA256)
	}
	var one [1]byte
	if n, _ := zst.ReadAt(one[:], idx.CompressedSize); n > 0 {
		return fmt.Errorf("%w: object has bytes after its last frame at %d", ErrCorrupt, idx.CompressedSize)
	}
	if raw != nil {
		if n, _ := io.ReadFull(raw, one[:]); n > 0 {
			return fmt.Errorf("%w: image has bytes after the last chunk at %d", ErrMismatch, idx.Size)
		}
	}
	return nil
}

// grow returns b resized to n bytes, reusing its array when it is big enough.
func grow(b []byte, n int64) []byte {
	if int64(cap(b)) < n {
		return make([]byte, n)
	}
	return b[:n]
}
