package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Block is the alignment of direct I/O: a multiple of every logical block
// size (512 or 4096) a disk has.
const Block = 4096

// Sequential writes a region of a disk front to back through a ring of
// memory that several goroutines fill at once. Reserve hands out the ring
// space of the next bytes of the region in order; whoever holds a Slot
// fills it (a decoder writes straight into it, so the bytes are copied
// once); Commit, called in order, makes a slot's bytes final; a goroutine
// of Sequential's own writes the committed bytes to the disk in the
// background, in writes of at least a unit, and frees their ring space
// when the write returns. Reserve waits while the ring is full.
//
// On a disk or a disk image file (OpenSequential) the writes go through a
// descriptor of its own opened with O_DIRECT, so the bytes reach the disk
// without a copy in the page cache (which saves CPU time and leaves nothing
// dirty for a sync to flush). A block that is only partly written is
// completed with the disk's own bytes (read, modify, write), so no byte
// outside the region changes. When the file system refuses O_DIRECT
// (tmpfs), or for any other target (NewSequential), the writes are plain
// WriteAt calls of the exact bytes, with the same results.
//
// The ring is mapped outside the Go heap: it is resident while it is
// used, unmapped by Close, and never counted by the garbage collector's
// pacing, so the heap stays small whatever the ring's size.
//
// Reserve is called by one goroutine; Commit, Flush, ReadAt and Close by
// one goroutine (the same or another); a Slot's bytes are filled by any
// goroutine between the two. Sync may run at any time: it makes durable
// what Flush wrote before it was called.
type Sequential struct {
	f      *os.File // own descriptor (OpenSequential), closed by Close
	rw     ReaderWriterAt
	direct bool
	align  int64 // Block with O_DIRECT, else 1

	mem      []byte // mapped: the ring, then room for a slot that runs past its end
	size     int64  // ring bytes
	slot     int64  // largest reservation
	origin   int64  // disk offset of ring position 0, aligned
	start    int64  // first disk offset of the region
	unit     int64  // smallest background write
	maxWrite int64  // largest background write
	scratch  []byte // aligned, mapped on first need: read-modify-write and disk reads

	mu        sync.Mutex
	more      *sync.Cond    // the write loop waits for committed bytes
	freed     chan struct{} // ring space was freed (Reserve waits on it)
	wrote     chan struct{} // a write returned (Flush waits on it)
	reserved  int64         // end of the bytes Reserve handed out
	committed int64         // end of the final bytes
	written   int64         // end of the bytes on the disk, aligned
	flushing  bool          // write what is committed, however little
	pin       int64         // ReadAt copies ring bytes from here on; -1 none
	err       error         // of a background write
	closed    bool
	done      chan struct{} // the write loop returned
}

// ReaderWriterAt is a target NewSequential writes through.
type ReaderWriterAt interface {
	io.ReaderAt
	io.WriterAt
}

// Slot is the ring space of bytes [Off, Off+len(Buf)) of the disk. Buf is
// contiguous; when it runs past the ring's end, Commit copies that part to
// the ring's start.
type Slot struct {
	Off int64
	Buf []byte
}

// Sizes of a Sequential.
type SequentialSizes struct {
	Ring  int // ring bytes; rounded up to a multiple of Unit, at least 2*Slot + Unit
	Slot  int // the largest reservation
	Unit  int // the smallest background write, a multiple of Block
	Write int // the largest background write; at least Unit
}

// DefaultSequentialSizes are for chunks of up to 256 KiB.
var DefaultSequentialSizes = SequentialSizes{Ring: 6 << 20, Slot: 256 << 10, Unit: 1 << 20, Write: 2 << 20}

// OpenSequential opens the disk (or disk image file) at path for writing
// from off on.
func OpenSequential(path string, off int64, sz SequentialSizes) (*Sequential, error) {
	if off < 0 {
		return nil, fmt.Errorf("open %s for sequential writes: negative offset %d", path, off)
	}
	direct := true
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_DIRECT, 0)
	if errors.Is(err, unix.EINVAL) {
		direct = false
		f, err = os.OpenFile(path, os.O_RDWR, 0)
	}
	if err != nil {
		return nil, err
	}
	s, err := newSequential(f, off, sz, direct)
	if err != nil {
		f.Close()
		return nil, err
	}
	s.f = f
	return s, nil
}

// NewSequential writes to rw from off on with plain WriteAt calls.
func NewSequential(rw ReaderWriterAt, off int64, sz SequentialSizes) (*Sequential, error) {
	if off < 0 {
		return nil, fmt.Errorf("sequential writes: negative offset %d", off)
	}
	return newSequential(rw, off, sz, false)
}

func newSequential(rw ReaderWriterAt, off int64, sz SequentialSizes, direct bool) (*Sequential, error) {
	if sz.Slot <= 0 || sz.Unit <= 0 || sz.Unit%Block != 0 {
		return nil, fmt.Errorf("sequential writes: bad sizes %+v", sz)
	}
	unit, slot := int64(sz.Unit), int64(sz.Slot)
	size := max(int64(sz.Ring), 2*slot+unit)
	size = (size + unit - 1) / unit * unit
	s := &Sequential{rw: rw, direct: direct, align: 1, size: size, slot: slot, unit: unit,
		maxWrite: max(unit, int64(sz.Write)), start: off, pin: -1,
		freed: make(chan struct{}, 1), wrote: make(chan struct{}, 1), done: make(chan struct{})}
	s.more = sync.NewCond(&s.mu)
	if direct {
		s.align = Block
	}
	s.origin = off - off%s.align
	s.reserved, s.committed, s.written = off, off, s.origin
	mem, err := unix.Mmap(-1, 0, int(size+slot), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("sequential writes: map %d bytes: %w", size+slot, err)
	}
	s.mem = mem
	if head := off - s.origin; head > 0 {
		// The block's bytes before the region are the disk's own: they
		// are written back with the first write.
		if err := s.readBlock(s.mem[:Block], s.origin); err != nil {
			unix.Munmap(mem)
			return nil, err
		}
	}
	go s.loop()
	return s, nil
}

// Direct reports whether the writes bypass the page cache.
func (s *Sequential) Direct() bool { return s.direct }

// Offset is the disk offset where the bytes committed so far end.
func (s *Sequential) Offset() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.committed
}

// Written is the disk offset up to which the bytes committed are on the
// disk (not synced): written by calls that have returned.
func (s *Sequential) Written() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return max(s.written, s.start)
}

func (s *Sequential) pos(off int64) int64 { return (off - s.origin) % s.size }

// signal wakes the one waiter of c, if any.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// TryReserve is Reserve that does not wait: ok is false when the ring has
// no room for n bytes yet.
func (s *Sequential) TryReserve(n int) (sl Slot, ok bool, err error) {
	if int64(n) > s.slot || n < 0 {
		return Slot{}, false, fmt.Errorf("reserve %d bytes: more than the largest slot, %d", n, s.slot)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return Slot{}, false, s.err
	}
	if s.closed {
		return Slot{}, false, errors.New("reserve: sequential writer closed")
	}
	// The new bytes take the ring positions of bytes one ring earlier:
	// those must be on the disk, and not held by a ReadAt.
	limit := s.written
	if s.pin >= 0 {
		limit = min(limit, s.pin)
	}
	if s.reserved+int64(n)-s.size > limit {
		return Slot{}, false, nil
	}
	off := s.reserved
	s.reserved += int64(n)
	p := s.pos(off)
	return Slot{Off: off, Buf: s.mem[p : p+int64(n) : p+int64(n)]}, true, nil
}

// Reserve hands out the ring space of the next n bytes of the region,
// waiting while the ring holds bytes not yet on the disk there.
func (s *Sequential) Reserve(ctx context.Context, n int) (Slot, error) {
	for {
		sl, ok, err := s.TryReserve(n)
		if err != nil || ok {
			return sl, err
		}
		select {
		case <-s.freed:
		case <-s.done:
		case <-ctx.Done():
			return Slot{}, ctx.Err()
		}
	}
}

// Commit makes the bytes of sl, the next ones in order, final: they are
// written to the disk in the background from now on.
func (s *Sequential) Commit(sl Slot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if sl.Off != s.committed || sl.Off+int64(len(sl.Buf)) > s.reserved {
		return fmt.Errorf("commit [%d, %d): out of order, %d bytes committed", sl.Off, sl.Off+int64(len(sl.Buf)), s.committed)
	}
	if over := s.pos(sl.Off) + int64(len(sl.Buf)) - s.size; over > 0 {
		copy(s.mem[:over], s.mem[s.size:s.size+over])
	}
	s.committed += int64(len(sl.Buf))
	if s.ready() >= s.unit {
		s.more.Signal()
	}
	return nil
}

// ready is the count of committed bytes the write loop may write now.
func (s *Sequential) ready() int64 {
	return s.committed - s.committed%s.align - s.written
}

// loop writes committed bytes in the background.
func (s *Sequential) loop() {
	defer close(s.done)
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		n := s.ready()
		for !s.closed && s.err == nil && n < s.unit && !(s.flushing && n > 0) {
			s.more.Wait()
			n = s.ready()
		}
		if s.closed || s.err != nil {
			return
		}
		off := s.written
		p := s.pos(off)
		n = min(n, s.size-p, s.maxWrite)
		s.mu.Unlock()
		err := s.pwrite(s.mem[p:p+n], off)
		s.mu.Lock()
		if err != nil {
			s.err = err
		} else {
			s.written += n
		}
		signal(s.freed)
		signal(s.wrote)
	}
}

// Flush writes every byte committed so far to the disk (not synced). The
// last, partial block is written completed with the disk's bytes, and
// again, completed with the region's, by a later Flush or write.
func (s *Sequential) Flush() error {
	s.mu.Lock()
	s.flushing = true
	s.more.Signal()
	for s.ready() > 0 && s.err == nil && !s.closed {
		s.mu.Unlock()
		select {
		case <-s.wrote:
		case <-s.done:
		}
		s.mu.Lock()
	}
	s.flushing = false
	err, off, end := s.err, s.written, s.committed
	s.mu.Unlock()
	if err != nil || end == off {
		return err
	}
	// The loop leaves this block alone: the bytes after end are not
	// committed, and only this goroutine commits.
	blk, err := s.scratchBlock()
	if err != nil {
		return err
	}
	if err := s.readBlock(blk, off); err != nil {
		return err
	}
	p := s.pos(off)
	copy(blk, s.mem[p:p+end-off])
	return s.pwrite(blk, off)
}

// scratchBlock returns the aligned scratch space, mapping it on first use.
func (s *Sequential) scratchBlock() ([]byte, error) {
	if s.scratch == nil {
		n := int(s.slot+2*Block+Block-1) / Block * Block
		m, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return nil, fmt.Errorf("sequential writes: map %d bytes: %w", n, err)
		}
		s.scratch = m
	}
	return s.scratch[:Block], nil
}

// Sync makes what Flush wrote durable.
func (s *Sequential) Sync() error {
	if s.f != nil {
		return s.f.Sync()
	}
	if sy, ok := s.rw.(interface{ Sync() error }); ok {
		return sy.Sync()
	}
	return nil
}

// ReadAt reads bytes committed before, or bytes of the disk before the
// region, from the ring where they still are, else from the disk.
func (s *Sequential) ReadAt(p []byte, off int64) (int, error) {
	end := off + int64(len(p))
	s.mu.Lock()
	if off < 0 || end > s.committed {
		c := s.committed
		s.mu.Unlock()
		return 0, fmt.Errorf("read [%d, %d): beyond the bytes written, which end at %d", off, end, c)
	}
	// Bytes from written on stay in the ring while pinned.
	w := s.written
	s.pin = max(off, w)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.pin = -1
		s.mu.Unlock()
		signal(s.freed)
	}()
	done := 0
	if off < w {
		n, err := s.readDisk(p[:min(end, w)-off], off)
		if err != nil {
			return n, err
		}
		done = n
	}
	for done < len(p) {
		q := s.pos(off + int64(done))
		done += copy(p[done:], s.mem[q:s.size])
	}
	return done, nil
}

// readDisk reads bytes written before from the disk.
func (s *Sequential) readDisk(p []byte, off int64) (int, error) {
	if !s.direct {
		n, err := s.rw.ReadAt(p, off)
		if err != nil {
			return n, fmt.Errorf("read back at %d: %w", off, err)
		}
		return n, nil
	}
	if _, err := s.scratchBlock(); err != nil {
		return 0, err
	}
	done := 0
	for done < len(p) {
		at := off + int64(done)
		blk := at - at%Block
		n := min(int64(len(s.scratch)), (at+int64(len(p)-done)-blk+Block-1)/Block*Block)
		if err := s.readBlock(s.scratch[:n], blk); err != nil {
			return done, err
		}
		done += copy(p[done:], s.scratch[at-blk:n])
	}
	return done, nil
}

// readBlock fills b (aligned) from the disk at off; past the end of a file
// it reads zeros.
func (s *Sequential) readBlock(b []byte, off int64) error {
	n, err := s.rw.ReadAt(b, off)
	if err == io.EOF {
		clear(b[n:])
		err = nil
	}
	if err != nil {
		return fmt.Errorf("read %s at %d: %w", s.name(), off, bare(err))
	}
	return nil
}

func (s *Sequential) pwrite(b []byte, off int64) error {
	if _, err := s.rw.WriteAt(b, off); err != nil {
		return fmt.Errorf("write %s at %d: %w", s.name(), off, bare(err))
	}
	return nil
}

// bare drops the operation and path an *os.PathError repeats: the
// message names the device and the offset already.
func bare(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func (s *Sequential) name() string {
	if s.f != nil {
		return s.f.Name()
	}
	return "target"
}

// Write reserves, fills and commits p, in slots of at most the largest
// reservation: the ring used as a plain buffered writer.
func (s *Sequential) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		sl, err := s.Reserve(context.Background(), min(len(p)-done, int(s.slot)))
		if err != nil {
			return done, err
		}
		copy(sl.Buf, p[done:])
		if err := s.Commit(sl); err != nil {
			return done, err
		}
		done += len(sl.Buf)
	}
	return done, nil
}

// Close stops the background writes and unmaps the ring; bytes not
// flushed are lost. No Slot may be used after Close.
func (s *Sequential) Close() error {
	s.mu.Lock()
	s.closed = true
	s.more.Broadcast()
	s.mu.Unlock()
	<-s.done
	err := s.err
	if s.f != nil {
		if cerr := s.f.Close(); err == nil {
			err = cerr
		}
	}
	unix.Munmap(s.mem)
	s.mem = nil
	if s.scratch != nil {
		unix.Munmap(s.scratch)
		s.scratch = nil
	}
	return err
}
