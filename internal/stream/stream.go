package stream

import (
	"context"
	"crypto/subtle"
	"fmt"
	"io"
	"os"

	"github.com/minio/sha256-simd"

	"github.com/twinroot/twinroot/internal/refusal"
)

// ErrMismatch is returned when a region does not read back as expected:
// refusal.ErrMismatch, bytes that differ from what was signed.
var ErrMismatch = refusal.ErrMismatch

// BufSize is the copy unit.
const BufSize = 4 << 20

// Disk is what a copy writes to.
type Disk interface {
	io.WriterAt
	Sync() error
}

// CopyHashed copies size bytes of src to dst at off, syncs, and returns their
// SHA-256. progress, when set, is called after every unit.
func CopyHashed(ctx context.Context, dst Disk, off int64, src io.ReaderAt, size int64, progress func(done, total int64)) ([]byte, error) {
	h := sha256.New()
	buf := make([]byte, BufSize)
	for done := int64(0); done < size; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := min(int64(len(buf)), size-done)
		if _, err := src.ReadAt(buf[:n], done); err != nil {
			return nil, fmt.Errorf("read image at %d: %w", done, err)
		}
		h.Write(buf[:n])
		if _, err := dst.WriteAt(buf[:n], off+done); err != nil {
			return nil, fmt.Errorf("write at %d: %w", off+done, err)
		}
		done += n
		if progress != nil {
			progress(done, size)
		}
	}
	if err := dst.Sync(); err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	return h.Sum(nil), nil
}

// Verify reads size bytes at off of f around the page cache
// (DirectReader) and compares their SHA-256 with want.
func Verify(f *os.File, off, size int64, want []byte) error {
	d, err := OpenDirectReader(f.Name())
	if err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	defer d.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, io.NewSectionReader(d, off, size), make([]byte, directBuf)); err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	if got := h.Sum(nil); subtle.ConstantTimeCompare(got, want) != 1 {
		return fmt.Errorf("%w: reads back %x, wrote %x", ErrMismatch, got, want)
	}
	return nil
}

// Equal reports whether a hex SHA-256 names sum.
func Equal(hexSum string, sum []byte) bool {
	if len(hexSum) != 2*len(sum) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(fmt.Sprintf("%x", sum)), []byte(hexSum)) == 1
}
