package stream

import (
	"errors"
	"fmt"
	"io"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Block is the alignment of direct I/O: a multiple of every logical block
// size (512 or 4096) a disk has.
const Block = 4096

// Sequential writes a region of a disk front to back, in order, through a
// descriptor of its own opened with O_DIRECT, so the bytes go to the disk
// without a copy in the page cache (which saves CPU time and leaves
// nothing dirty for a sync to flush). Writes are gathered into aligned
// buffers of SequentialBuf bytes; while one is written to the disk in the
// background, the next fills. A block that is only partly written is
// completed with the disk's own bytes (read, modify, write), so no byte
// outside the written range changes. When the file system refuses O_DIRECT
// (tmpfs), Sequential writes through the page cache instead, with the same
// results.
//
// Sequential is not safe for concurrent use, except Sync, which may run
// while another goroutine writes: it makes durable what Flush wrote before
// it was called.
type Sequential struct {
	f      *os.File
	direct bool
	mem    []byte     // the buffers' allocation
	buf    []byte     // aligned, len SequentialBuf: the one filling
	spare  []byte     // the other one, being written while busy is set
	busy   chan error // the background write of spare, or nil
	base   int64      // disk offset of buf[0], a multiple of Block
	n      int        // bytes of buf that hold data: buf[:n] is disk [base, base+n)
	tail   []byte     // one aligned block for read-modify-write
}

// SequentialBuf is the size of one write of Sequential.
const SequentialBuf = 1 << 20

// OpenSequential opens the disk (or disk image file) at path for writing
// from off on.
func OpenSequential(path string, off int64) (*Sequential, error) {
	if off < 0 {
		return nil, fmt.Errorf("open %s for sequential writes: negative offset %d", path, off)
	}
	s := &Sequential{direct: true}
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_DIRECT, 0)
	if errors.Is(err, unix.EINVAL) {
		s.direct = false
		f, err = os.OpenFile(path, os.O_RDWR, 0)
	}
	if err != nil {
		return nil, err
	}
	s.f = f
	s.mem = make([]byte, 2*SequentialBuf+2*Block)
	s.buf = aligned(s.mem, SequentialBuf)
	s.spare = aligned(s.mem[SequentialBuf:], SequentialBuf)
	s.tail = aligned(s.mem[2*SequentialBuf+Block:], Block)
	s.base = off - off%Block
	if s.n = int(off - s.base); s.n > 0 {
		if err := s.readBlock(s.buf[:Block], s.base); err != nil {
			f.Close()
			return nil, err
		}
	}
	return s, nil
}

// aligned returns n bytes of b that start at a multiple of Block in memory.
func aligned(b []byte, n int) []byte {
	skip := int(-uintptr(unsafe.Pointer(unsafe.SliceData(b))) & (Block - 1))
	return b[skip : skip+n : skip+n]
}

// Direct reports whether the writes bypass the page cache.
func (s *Sequential) Direct() bool { return s.direct }

// Offset is the disk offset the next Write goes to.
func (s *Sequential) Offset() int64 { return s.base + int64(s.n) }

// Write appends p at Offset, writing to the disk each time the buffer fills.
func (s *Sequential) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		k := copy(s.buf[s.n:], p[done:])
		s.n += k
		done += k
		if s.n == len(s.buf) {
			// The buffer before must be on the disk before this one is
			// sent and the spare refilled.
			if err := s.wait(); err != nil {
				s.n -= k
				return done - k, err
			}
			full, off := s.buf, s.base
			s.busy = make(chan error, 1)
			go func(busy chan<- error) { busy <- s.pwrite(full, off) }(s.busy)
			s.buf, s.spare = s.spare, s.buf
			s.base += int64(s.n)
			s.n = 0
		}
	}
	return done, nil
}

// wait waits for the background write, if any.
func (s *Sequential) wait() error {
	if s.busy == nil {
		return nil
	}
	err := <-s.busy
	s.busy = nil
	return err
}

// Flush writes every byte written so far to the disk (not synced). The
// last, partial block stays in the buffer and is written again, completed,
// by the next Flush.
func (s *Sequential) Flush() error {
	if err := s.wait(); err != nil {
		return err
	}
	full := s.n &^ (Block - 1)
	if full > 0 {
		if err := s.pwrite(s.buf[:full], s.base); err != nil {
			return err
		}
	}
	if part := s.n - full; part > 0 {
		off := s.base + int64(full)
		if err := s.readBlock(s.tail, off); err != nil {
			return err
		}
		copy(s.tail, s.buf[full:s.n])
		if err := s.pwrite(s.tail, off); err != nil {
			return err
		}
	}
	copy(s.buf, s.buf[full:s.n])
	s.base += int64(full)
	s.n -= full
	return nil
}

// Sync makes what Flush wrote durable.
func (s *Sequential) Sync() error { return s.f.Sync() }

// ReadAt reads bytes written before, from the buffer where they still are.
func (s *Sequential) ReadAt(p []byte, off int64) (int, error) {
	end := off + int64(len(p))
	if end > s.Offset() {
		return 0, fmt.Errorf("read [%d, %d): beyond the %d bytes written", off, end, s.Offset())
	}
	if off >= s.base {
		return copy(p, s.buf[off-s.base:s.n]), nil
	}
	if err := s.wait(); err != nil {
		return 0, err
	}
	if end > s.base {
		if err := s.Flush(); err != nil {
			return 0, err
		}
	}
	return s.readUnaligned(p, off)
}

// readUnaligned reads p at off through the aligned tail block, one block at
// a time (copies of earlier chunks are rare and small).
func (s *Sequential) readUnaligned(p []byte, off int64) (int, error) {
	done := 0
	for done < len(p) {
		at := off + int64(done)
		blk := at - at%Block
		if err := s.readBlock(s.tail, blk); err != nil {
			return done, err
		}
		done += copy(p[done:], s.tail[at-blk:])
	}
	return done, nil
}

// readBlock fills b (aligned) from the disk at off; past the end of a file
// it reads zeros.
func (s *Sequential) readBlock(b []byte, off int64) error {
	n, err := s.f.ReadAt(b, off)
	if err == io.EOF {
		clear(b[n:])
		err = nil
	}
	if err != nil {
		return fmt.Errorf("read %s at %d: %w", s.f.Name(), off, err)
	}
	return nil
}

func (s *Sequential) pwrite(b []byte, off int64) error {
	if _, err := s.f.WriteAt(b, off); err != nil {
		return fmt.Errorf("write %s at %d: %w", s.f.Name(), off, err)
	}
	return nil
}

// Close closes the descriptor; bytes not flushed are lost.
func (s *Sequential) Close() error {
	err := s.wait()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	return err
}
