package stream

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// directBuf is how much a DirectReader reads from the disk at once.
const directBuf = 1 << 20

// DirectReader reads a disk or a disk image file around the page cache:
// through a descriptor of its own opened with O_DIRECT, in aligned blocks,
// so the bytes are what the disk holds, never what the kernel kept of what
// was written. Asking the kernel to drop cached bytes (fadvise) is not
// enough: it keeps pages it cannot drop at once, and a read-back then
// hashes the bytes that were written, not the disk's. Where the file
// system refuses O_DIRECT (tmpfs) it reads through the page cache after
// asking the kernel to drop the bytes, the best that is left.
type DirectReader struct {
	f      *os.File
	direct bool
	buf    []byte // aligned (mapped), with O_DIRECT
}

// OpenDirectReader opens the disk or file at path for reading around the
// page cache.
func OpenDirectReader(path string) (*DirectReader, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECT, 0)
	if errors.Is(err, unix.EINVAL) {
		if f, err = os.Open(path); err != nil {
			return nil, err
		}
		return &DirectReader{f: f}, nil
	}
	if err != nil {
		return nil, err
	}
	buf, err := unix.Mmap(-1, 0, directBuf, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read %s around the page cache: map %d bytes: %w", path, directBuf, err)
	}
	return &DirectReader{f: f, direct: true, buf: buf}, nil
}

// Direct reports whether the reads bypass the page cache.
func (d *DirectReader) Direct() bool { return d.direct }

// ReadAt reads len(p) bytes at off; past the end of a file it reads zeros
// up to the block's end and then io.EOF.
func (d *DirectReader) ReadAt(p []byte, off int64) (int, error) {
	if !d.direct {
		_ = unix.Fadvise(int(d.f.Fd()), off, int64(len(p)), unix.FADV_DONTNEED)
		return d.f.ReadAt(p, off)
	}
	done := 0
	for done < len(p) {
		at := off + int64(done)
		blk := at - at%Block
		n := min(int64(len(d.buf)), (at+int64(len(p)-done)-blk+Block-1)/Block*Block)
		got, err := d.f.ReadAt(d.buf[:n], blk)
		if got <= int(at-blk) {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return done, err
		}
		done += copy(p[done:], d.buf[at-blk:got])
		if err != nil && done < len(p) {
			return done, err
		}
	}
	return done, nil
}

// Name is the path it reads.
func (d *DirectReader) Name() string { return d.f.Name() }

// Close closes its descriptor.
func (d *DirectReader) Close() error {
	if d.buf != nil {
		unix.Munmap(d.buf)
		d.buf = nil
	}
	return d.f.Close()
}
