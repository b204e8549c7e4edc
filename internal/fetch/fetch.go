package fetch

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/twinroot/twinroot/internal/chunk"
	"github.com/twinroot/twinroot/internal/source"
	"github.com/twinroot/twinroot/internal/stream"
)

// ErrSlotMismatch: a chunk read back from the slot (one an earlier run
// wrote, or any with Options.ReadBack) does not hash to the index. The
// journal has been reset.
var ErrSlotMismatch = errors.New("slot does not match the release")

// Defaults of Options.
const (
	DefaultMaxGap       = 256 << 10
	DefaultMaxRequest   = 64 << 20
	DefaultSyncEvery    = 32 << 20
	DefaultStallTimeout = 30 * time.Second
	DefaultMinRate      = 1 << 10 // bytes a second: a 100 MiB delta would take over a day below it
	// syncInterval bounds the time between journal records, so a slow link
	// loses little on a power cut.
	syncInterval = 2 * time.Second
)

// Target is the disk holding the slot being written.
type Target interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
}

// Options of Apply. Source, ObjectKey, Index and Target are required.
type Options struct {
	Source    source.Source
	ObjectKey string // <channel>/<version>/slot.img.zst
	Index     *chunk.Index

	// Running is the running slot, read up to RunningSize (its image size,
	// or the whole partition); nil or 0 fetches every chunk.
	Running     io.ReaderAt
	RunningSize int64
	// RunningIndex, when set, is the index the running slot was written
	// from (kept by the device). If its chunker parameters are the new
	// index's, its entries stand for the scan of the running slot, which
	// then is not read in full; every chunk copied is still hashed, and
	// one that does not match is fetched instead.
	RunningIndex *chunk.Index

	// Target is written from TargetOffset (the slot's start on the disk)
	// to TargetOffset + Index.Size. The caller checks that the image fits.
	Target       Target
	TargetOffset int64

	// Journal records progress; nil keeps none (every run starts over).
	Journal Journal
	// Prepare, when set, is called once the journal names this release
	// and before the first byte of the target is written (a slot is made
	// unbootable there). An error from the journal, such as a full data
	// partition, comes before it: then nothing has changed.
	Prepare func() error

	MaxGap       int64         // coalesce requests across gaps up to this (compressed bytes); default 256 KiB, <0 none
	MaxRequest   int64         // most bytes one request asks for; default 64 MiB
	SyncEvery    int64         // raw bytes between journal records (and at most 2 s); default 32 MiB
	StallTimeout time.Duration // a request with no byte for this long is retried; default 30 s
	MinRate      int64         // nor one slower than this, in bytes a second over StallTimeout of waiting; default 1 KiB/s
	Workers      int           // decompress-and-hash goroutines; default GOMAXPROCS+1

	// ReadBack reads the whole slot back from the disk after the last
	// chunk and checks every chunk again. Without it only the chunks an
	// earlier run wrote are read back: every chunk this run writes is
	// hashed before it is written.
	ReadBack bool

	// Progress, when set, is called at the start and after every chunk
	// with the raw bytes of the slot done (resumed ones included) and the
	// image size.
	Progress func(done, total int64)
	// Retry is the back-off for transient errors; nil is DefaultRetry. It
	// may be called from several goroutines at once.
	Retry RetryFunc
}

// Stats says where the bytes of an apply came from. Byte counts are raw
// (uncompressed) except FetchedCompressed.
type Stats struct {
	Chunks            int           `json:"chunks"`             // in the index
	Size              int64         `json:"size"`               // raw image size
	Resumed           bool          `json:"resumed"`            // the journal let this run skip chunks
	Skipped           int64         `json:"skipped"`            // written by an earlier run (journal)
	Reused            int64         `json:"reused"`             // copied from the running slot or from the target itself
	Fetched           int64         `json:"fetched"`            // of chunks fetched from the source
	FetchedCompressed int64         `json:"fetched_compressed"` // bytes received from the source: frames, gaps, retried bytes
	Requests          int64         `json:"requests"`           // Range requests made
	Retries           int64         `json:"retries"`            // transient failures retried
	Refetched         int64         `json:"refetched"`          // chunks fetched again after they failed their hash
	Misses            int64         `json:"misses"`             // chunks not in the running slot where expected, fetched instead
	Scan              time.Duration `json:"scan_ns"`            // chunking the running slot
	Verify            time.Duration `json:"verify_ns"`          // reading back chunks an earlier run wrote (or all, Options.ReadBack)
	Elapsed           time.Duration `json:"elapsed_ns"`
}

// origin says where a chunk's bytes come from.
type origin struct {
	kind kind
	off  int64 // raw offset in the running slot or in the target slot
}

type kind uint8

const (
	fromSource  kind = iota
	fromRunning      // same SHA-256 in the running slot
	fromTarget       // same SHA-256 earlier in the new image, already written
)

// counters are the Stats the stages update concurrently.
type counters struct {
	reused, fetched, wire, requests, retries, refetched, misses atomic.Int64
}

// run is one Apply.
type run struct {
	o     Options
	idx   *chunk.Index
	id    [sha256.Size]byte
	start int // first chunk this run writes
	plan  []origin
	bySHA shaOrder
	n     counters

	out    *stream.Sequential // the slot's ring: chunks are placed in it, written in order
	frames *frameRing         // compressed frames between the fetcher and the workers

	// Chunk i's job is jobs[i%maxJobs]; free holds a token per job the
	// writer is done with, so at most maxJobs chunks are in flight.
	jobs []job
	free chan struct{}
	// The fetcher's state: the chunks whose jobs it has taken end at taken;
	// chunks [from, to) are the batch it has not handed on yet.
	taken, from, to int
	order, work     chan batch
}

// batch is chunks [from, to), handed on together.
type batch struct{ from, to int }

// Jobs travel between the stages in batches of up to batchLen: a hand-over
// per chunk made the stages wait on each other's wake-ups more than on
// their work. The memory in flight is the slot's ring (ringSize: chunks
// being decoded into it, and the bytes the disk has not taken yet) and the
// frame ring (frameRingSize: frames fetched and not yet decoded), both
// grown for an index whose chunks are larger than the default's. Frames
// hold their room until their chunk is committed, so the frame ring must
// hold the batches the workers decode and the one the fetcher fills: with
// 1 MiB, less than two batches of eight, the fetcher and the workers took
// turns. Measured on 2 cores (medians of interleaved runs), batches of four
// with these rings were 10% faster than batches of eight with 6 and 1 MiB
// rings (the same memory) at 512 MiB, and 4 and 1 MiB rings 5% slower
// still; these keep updater apply's peak RSS under 32 MiB at 2 GiB.
const (
	batchLen      = 4
	maxJobs       = 256
	ringSize      = 5 << 20
	writeUnit     = 1 << 20
	maxWrite      = 2 << 20
	frameRingSize = 2 << 20
)

// job is one chunk on its way to the writer. A worker fills slot (or sets
// err) and then sends on done.
type job struct {
	i     int
	slot  stream.Slot // the chunk's place in the ring, at its disk offset
	frame []byte      // its frame, in the frame ring (a fetched chunk)
	used  int64       // frame ring bytes to give back once it is written
	err   error
	done  chan struct{} // capacity 1
}

// Apply writes the release described by o.Index into the target slot, reusing
// the chunks the running slot has, resuming from o.Journal, and verifies the
// whole slot in the end. It returns what it did, also on error.
func Apply(ctx context.Context, o Options) (st Stats, err error) {
	began := time.Now()
	r, err := newRun(o)
	if err != nil {
		return Stats{}, err
	}
	st = Stats{Chunks: len(r.idx.Chunks), Size: r.idx.Size}
	defer func() {
		st.Reused, st.Fetched = r.n.reused.Load(), r.n.fetched.Load()
		st.FetchedCompressed, st.Requests = r.n.wire.Load(), r.n.requests.Load()
		st.Retries, st.Refetched, st.Misses = r.n.retries.Load(), r.n.refetched.Load(), r.n.misses.Load()
		st.Elapsed = time.Since(began)
	}()

	if err := r.resume(); err != nil {
		return st, err
	}
	if o.Prepare != nil {
		if err := o.Prepare(); err != nil {
			return st, err
		}
	}
	if r.start > 0 {
		st.Resumed = true
		st.Skipped = r.idx.Chunks[r.start-1].Offset + r.idx.Chunks[r.start-1].Length
	}
	if r.o.Progress != nil {
		r.o.Progress(st.Skipped, r.idx.Size)
	}
	if r.start < len(r.idx.Chunks) {
		t := time.Now()
		r.bySHA = newSHAOrder(r.idx.Chunks)
		have, err := r.scan(ctx)
		st.Scan = time.Since(t)
		if err != nil {
			return st, err
		}
		r.makePlan(have)
		r.bySHA = shaOrder{} // not needed from here on
		if err := r.pipeline(ctx); err != nil {
			return st, err
		}
	}
	t := time.Now()
	err = r.verify(ctx)
	st.Verify = time.Since(t)
	if err != nil {
		if errors.Is(err, ErrSlotMismatch) {
			if jerr := r.save(0); jerr != nil {
				err = fmt.Errorf("%w; reset journal: %v", err, jerr)
			}
		}
		return st, err
	}
	return st, nil
}

func newRun(o Options) (*run, error) {
	switch {
	case o.Source == nil || o.ObjectKey == "":
		return nil, errors.New("fetch: no source or object key")
	case o.Index == nil:
		return nil, errors.New("fetch: no chunk index")
	case o.Target == nil:
		return nil, errors.New("fetch: no target")
	case o.TargetOffset < 0 || o.RunningSize < 0:
		return nil, fmt.Errorf("fetch: negative target offset %d or running size %d", o.TargetOffset, o.RunningSize)
	}
	ib, err := o.Index.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	if o.MaxGap == 0 {
		o.MaxGap = DefaultMaxGap
	}
	if o.MaxRequest <= 0 {
		o.MaxRequest = DefaultMaxRequest
	}
	if o.SyncEvery <= 0 {
		o.SyncEvery = DefaultSyncEvery
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = DefaultStallTimeout
	}
	if o.MinRate <= 0 {
		o.MinRate = DefaultMinRate
	}
	if o.Workers <= 0 {
		// One more than the CPUs: a worker that waits on a read of the
		// running slot or a refetch leaves the CPUs busy.
		o.Workers = runtime.GOMAXPROCS(0) + 1
	}
	if o.Retry == nil {
		o.Retry = DefaultRetry
	}
	if o.Running == nil {
		o.RunningSize = 0
	}
	return &run{o: o, idx: o.Index, id: sha256.Sum256(ib)}, nil
}

// resume reads the journal and sets the first chunk to write. Anything but
// a consistent record of this index starts over, and the journal is reset
// to this index before the first byte is written.
func (r *run) resume() error {
	if r.o.Journal == nil {
		return nil
	}
	s, err := r.o.Journal.Load()
	if err != nil && !errors.Is(err, ErrBadJournal) {
		return err
	}
	cs := r.idx.Chunks
	same := err == nil && s.Index == r.id && s.Target == r.o.TargetOffset && s.Size == r.idx.Size
	if same && s.Chunks > 0 && s.Chunks <= len(cs) &&
		s.Offset == cs[s.Chunks-1].Offset+cs[s.Chunks-1].Length {
		r.start = s.Chunks
		return nil
	}
	if same && s.Chunks == 0 {
		return nil
	}
	return r.save(0)
}

// save records that the first n chunks are on the disk.
func (r *run) save(n int) error {
	if r.o.Journal == nil {
		return nil
	}
	s := State{Index: r.id, Target: r.o.TargetOffset, Chunks: n, Size: r.idx.Size}
	if n > 0 {
		c := r.idx.Chunks[n-1]
		s.Offset = c.Offset + c.Length
	}
	return r.o.Journal.Save(s)
}

// scan finds where each chunk still to be written lies in the running
// slot: from RunningIndex when it was cut with the same parameters, else by
// chunking the running slot. have[k] is the running slot's offset of the
// chunks of group k of r.bySHA (its first place in the order), -1 for none;
// nil without a running slot.
func (r *run) scan(ctx context.Context) (have []int64, err error) {
	if r.o.RunningSize == 0 {
		return nil, nil
	}
	have = make([]int64, len(r.idx.Chunks))
	for k := range have {
		have[k] = -1
	}
	found := func(c chunk.Chunk) error {
		// Wanted: a chunk from start on has its bytes.
		if lo, hi := r.bySHA.group(&c.SHA256); lo < hi && int(r.bySHA.order[hi-1]) >= r.start &&
			have[lo] < 0 && c.Offset+c.Length <= r.o.RunningSize {
			have[lo] = c.Offset
		}
		return nil
	}
	if ri := r.o.RunningIndex; ri != nil && ri.Params == r.idx.Params {
		for _, c := range ri.Chunks {
			found(c)
		}
		return have, nil
	}
	if err := chunk.Scan(ctx, io.NewSectionReader(r.o.Running, 0, r.o.RunningSize), r.idx.Params, found); err != nil {
		return nil, fmt.Errorf("scan running slot: %w", err)
	}
	return have, nil
}

// makePlan picks the origin of every chunk from start on: the running
// slot, else the first place of the same bytes in the new image, if it is
// earlier, else the source.
func (r *run) makePlan(have []int64) {
	cs := r.idx.Chunks
	r.plan = make([]origin, len(cs))
	for i := r.start; i < len(cs); i++ {
		lo, _ := r.bySHA.group(&cs[i].SHA256)
		if have != nil && have[lo] >= 0 {
			r.plan[i] = origin{kind: fromRunning, off: have[lo]}
		} else if j := int(r.bySHA.order[lo]); j < i {
			r.plan[i] = origin{kind: fromTarget, off: cs[j].Offset}
		}
	}
}

// shaOrder is the chunks of an index in the order of their SHA-256, then
// of their place: a lookup table of 4 bytes per chunk, where maps of them
// took about 50 bytes per chunk, twice (3 MiB for a 2 GiB image).
type shaOrder struct {
	cs    []chunk.Chunk
	order []int32
}

func newSHAOrder(cs []chunk.Chunk) shaOrder {
	order := make([]int32, len(cs))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		if c := bytes.Compare(cs[a].SHA256[:], cs[b].SHA256[:]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	return shaOrder{cs: cs, order: order}
}

// group returns where the chunks whose SHA-256 is sum lie in the order:
// [lo, hi), empty when there are none.
func (o shaOrder) group(sum *[sha256.Size]byte) (lo, hi int) {
	lo = sort.Search(len(o.order), func(k int) bool { return bytes.Compare(o.cs[o.order[k]].SHA256[:], sum[:]) >= 0 })
	hi = lo
	for hi < len(o.order) && o.cs[o.order[hi]].SHA256 == *sum {
		hi++
	}
	return lo, hi
}

// span is one Range request: chunks first to last, both fetched, with
// chunks between them that come from elsewhere (their frames are skipped).
type span struct{ first, last int }

// spans coalesces the fetched chunks from start on into requests.
func (r *run) spans() []span {
	var out []span
	cs := r.idx.Chunks
	end := func(i int) int64 { return cs[i].CompressedOffset + cs[i].CompressedLength }
	for i := r.start; i < len(cs); i++ {
		if r.plan[i].kind != fromSource {
			continue
		}
		if n := len(out); n > 0 {
			cur := &out[n-1]
			gap := cs[i].CompressedOffset - end(cur.last)
			if gap <= max(r.o.MaxGap, 0) && end(i)-cs[cur.first].CompressedOffset <= r.o.MaxRequest {
				cur.last = i
				continue
			}
		}
		out = append(out, span{i, i})
	}
	return out
}

// pipeline runs the fetcher, the workers and the writer (doc.go).
func (r *run) pipeline(ctx context.Context) error {
	var maxLen, maxFrame int64
	for _, c := range r.idx.Chunks[r.start:] {
		maxLen, maxFrame = max(maxLen, c.Length), max(maxFrame, c.CompressedLength)
	}
	debug.FreeOSMemory()
	sz := stream.SequentialSizes{Ring: int(max(ringSize, 4*maxLen)), Slot: int(maxLen), Unit: writeUnit, Write: maxWrite}
	out, err := r.openSink(r.idx.Chunks[r.start].Offset, sz)
	if err != nil {
		return err
	}
	defer out.Close()
	r.out = out
	if r.frames, err = newFrameRing(max(frameRingSize, 2*maxFrame)); err != nil {
		return err
	}
	defer r.frames.close()
	r.jobs = make([]job, maxJobs)
	r.free = make(chan struct{}, maxJobs)
	for k := range r.jobs {
		r.jobs[k].done = make(chan struct{}, 1)
		r.free <- struct{}{}
	}
	r.taken, r.from, r.to = r.start, r.start, r.start
	r.order = make(chan batch, maxJobs/batchLen)
	r.work = make(chan batch, maxJobs/batchLen)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(r.order)
		defer close(r.work)
		if err := r.fetcher(gctx); err != nil {
			return err
		}
		return r.flush(gctx)
	})
	for range r.o.Workers {
		g.Go(func() error {
			var scratch []byte // a frame fetched on its own
			for b := range r.work {
				for i := b.from; i < b.to; i++ {
					j := &r.jobs[i%maxJobs]
					j.err = r.prepare(gctx, j, &scratch)
					j.done <- struct{}{}
				}
			}
			return nil
		})
	}
	synced := make(chan int, 1)
	g.Go(func() error { return r.writer(gctx, synced) })
	g.Go(func() error { return r.syncer(synced) })
	return g.Wait()
}

// newJob takes the job of chunk i, the next one, with its place in the
// ring and, for a fetched chunk, room for its frame, waiting while the
// pipeline is full; before it waits, it hands on the batch, whose chunks
// are what frees room. A job taken before (its frame did not arrive) is
// returned as it is, for the retry.
func (r *run) newJob(ctx context.Context, i int) (*job, error) {
	j := &r.jobs[i%maxJobs]
	if i < r.taken {
		return j, nil
	}
	select {
	case <-r.free:
	default:
		if err := r.flush(ctx); err != nil {
			return nil, err
		}
		select {
		case <-r.free:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	r.taken = i + 1
	c := r.idx.Chunks[i]
	j.i, j.err, j.frame, j.used = i, nil, nil, 0
	sl, ok, err := r.out.TryReserve(int(c.Length))
	if err == nil && !ok {
		if err = r.flush(ctx); err == nil {
			sl, err = r.out.Reserve(ctx, int(c.Length))
		}
	}
	if err != nil {
		return nil, err
	}
	j.slot = sl
	if r.plan[i].kind == fromSource {
		j.frame, j.used, ok = r.frames.take(c.CompressedLength)
		if !ok {
			if err := r.flush(ctx); err != nil {
				return nil, err
			}
			if j.frame, j.used, err = r.frames.wait(ctx, c.CompressedLength); err != nil {
				return nil, err
			}
		}
	}
	return j, nil
}

// send adds j, the chunk after the batch, to the batch, and hands the
// batch on when it is full.
func (r *run) send(ctx context.Context, j *job) error {
	r.to = j.i + 1
	if r.to-r.from < batchLen {
		return nil
	}
	return r.flush(ctx)
}

// flush hands the batch to the writer (in order) and to the workers. The
// fetcher calls it before anything that may wait (a request, a back-off,
// a full pipeline), so no chunk it holds keeps the others waiting.
func (r *run) flush(ctx context.Context) error {
	if r.to == r.from {
		return nil
	}
	b := batch{r.from, r.to}
	r.from = r.to
	for _, ch := range []chan batch{r.order, r.work} {
		select {
		case ch <- b:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// fetcher emits every chunk from start on in order, reading fetched frames
// from coalesced requests.
func (r *run) fetcher(ctx context.Context) error {
	local := func(i int) error {
		j, err := r.newJob(ctx, i)
		if err != nil {
			return err
		}
		return r.send(ctx, j)
	}
	i := r.start
	for _, sp := range r.spans() {
		for ; i < sp.first; i++ {
			if err := local(i); err != nil {
				return err
			}
		}
		if err := r.fetchSpan(ctx, sp); err != nil {
			return err
		}
		i = sp.last + 1
	}
	for ; i < len(r.idx.Chunks); i++ {
		if err := local(i); err != nil {
			return err
		}
	}
	return nil
}

// fetchSpan reads the frames of one span, reissuing the request from the
// first chunk not yet received after a transient failure.
func (r *run) fetchSpan(ctx context.Context, sp span) error {
	cs := r.idx.Chunks
	next, attempt := sp.first, 0
	for next <= sp.last {
		// Chunks from elsewhere need no bytes of a new request.
		for ; r.plan[next].kind != fromSource; next++ {
			j, err := r.newJob(ctx, next)
			if err != nil {
				return err
			}
			if err := r.send(ctx, j); err != nil {
				return err
			}
		}
		if err := r.flush(ctx); err != nil {
			return err
		}
		from, to := cs[next].CompressedOffset, cs[sp.last].CompressedOffset+cs[sp.last].CompressedLength
		body, err := r.openRange(ctx, from, to-from)
		if err == nil {
			next, err = r.readSpan(ctx, body, next, sp.last, &attempt)
			body.Close()
		}
		if err != nil {
			if ferr := r.flush(ctx); ferr != nil {
				return ferr
			}
			if err := r.again(ctx, &attempt, err); err != nil {
				return fmt.Errorf("fetch %s [%d, %d): %w", r.o.ObjectKey, from, to, err)
			}
		}
	}
	return nil
}

// readSpan reads chunks next..last from body and returns the first chunk it
// did not emit.
func (r *run) readSpan(ctx context.Context, body io.Reader, next, last int, attempt *int) (int, error) {
	for ; next <= last; next++ {
		c := r.idx.Chunks[next]
		j, err := r.newJob(ctx, next)
		if err != nil {
			return next, err
		}
		if r.plan[next].kind != fromSource {
			if err := r.send(ctx, j); err != nil {
				return next, err
			}
			if _, err := io.CopyN(io.Discard, body, c.CompressedLength); err != nil {
				return next + 1, err
			}
			continue
		}
		if _, err := io.ReadFull(body, j.frame); err != nil {
			return next, err // the retry reads its frame into the same room
		}
		*attempt = 0
		if err := r.send(ctx, j); err != nil {
			return next, err
		}
	}
	return next, nil
}

// prepare puts the raw bytes of chunk j.i in its slot, checked against the
// index: read from the running slot, or decompressed from its frame.
// scratch holds a frame fetched on its own.
func (r *run) prepare(ctx context.Context, j *job, scratch *[]byte) error {
	c := r.idx.Chunks[j.i]
	where := func() string {
		return fmt.Sprintf("chunk %d (raw %d+%d, compressed %d+%d)", j.i, c.Offset, c.Length, c.CompressedOffset, c.CompressedLength)
	}
	frame := j.frame
	switch o := r.plan[j.i]; o.kind {
	case fromTarget:
		return nil // the writer copies it
	case fromRunning:
		if _, err := r.o.Running.ReadAt(j.slot.Buf, o.off); err == nil && sha256.Sum256(j.slot.Buf) == c.SHA256 {
			r.n.reused.Add(c.Length)
			return nil
		}
		// Not there after all (a read error, or a RunningIndex that does
		// not describe the running slot): fetched on its own instead.
		r.n.misses.Add(1)
		*scratch = grow(*scratch, c.CompressedLength)
		frame = *scratch
		if err := r.fetchFrame(ctx, j.i, frame); err != nil {
			return fmt.Errorf("%s, not found in the running slot: %w", where(), err)
		}
	}
	err := decode(j.slot.Buf, c, frame)
	if errors.Is(err, chunk.ErrCorrupt) {
		// Fetched again on its own: a byte flipped on the wire heals, a
		// corrupt object fails the same way twice.
		r.n.refetched.Add(1)
		*scratch = grow(*scratch, c.CompressedLength)
		frame = *scratch
		if err := r.fetchFrame(ctx, j.i, frame); err != nil {
			return fmt.Errorf("%s: fetch again: %w", where(), err)
		}
		if err = decode(j.slot.Buf, c, frame); err != nil {
			err = fmt.Errorf("%w (fetched twice)", err)
		}
	}
	if err != nil {
		return fmt.Errorf("%s of %s: %w; not written", where(), r.o.ObjectKey, err)
	}
	r.n.fetched.Add(c.Length)
	return nil
}

// decode decompresses frame straight into dst, the chunk's slot, and checks
// it against the index.
func decode(dst []byte, c chunk.Chunk, frame []byte) error {
	out, err := chunk.AppendChunk(dst[:0], c, frame)
	if err != nil {
		return err
	}
	if len(out) > 0 && &out[0] != &dst[0] {
		copy(dst, out) // not decoded in place (the slot's capacity is the chunk's length)
	}
	return nil
}

// fetchFrame reads the frame of chunk i into frame with a request of its own.
func (r *run) fetchFrame(ctx context.Context, i int, frame []byte) error {
	c := r.idx.Chunks[i]
	attempt := 0
	for {
		body, err := r.openRange(ctx, c.CompressedOffset, c.CompressedLength)
		if err == nil {
			_, err = io.ReadFull(body, frame)
			body.Close()
		}
		if err == nil {
			return nil
		}
		if err := r.again(ctx, &attempt, err); err != nil {
			return fmt.Errorf("fetch %s [%d, %d): %w", r.o.ObjectKey, c.CompressedOffset, c.CompressedOffset+c.CompressedLength, err)
		}
	}
}

// writer commits the chunks to the ring in order (the ring writes them to
// the disk), and asks the syncer for a journal record every SyncEvery
// bytes or syncInterval; after the last chunk it flushes the ring and hands
// the syncer the count of all chunks.
func (r *run) writer(ctx context.Context, synced chan int) error {
	defer close(synced)
	cs := r.idx.Chunks
	var unsynced int64
	lastSave := time.Now()
	for b := range r.order {
		for i := b.from; i < b.to; i++ {
			j := &r.jobs[i%maxJobs]
			select {
			case <-j.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			if j.err != nil {
				return j.err
			}
			c := cs[i]
			if o := r.plan[i]; o.kind == fromTarget {
				if err := r.readTarget(j, o.off); err != nil {
					return err
				}
			}
			if err := r.out.Commit(j.slot); err != nil {
				return fmt.Errorf("write chunk %d at %d: %w", i, r.o.TargetOffset+c.Offset, err)
			}
			// The job is free from here on: the fetcher may take it at once.
			r.frames.give(j.used)
			r.free <- struct{}{}
			unsynced += c.Length
			if r.o.Progress != nil {
				r.o.Progress(c.Offset+c.Length, r.idx.Size)
			}
			if i == len(cs)-1 {
				if err := r.out.Flush(); err != nil {
					return fmt.Errorf("write up to chunk %d: %w", i, err)
				}
				return handOver(ctx, synced, len(cs), true)
			}
			if unsynced >= r.o.SyncEvery || time.Since(lastSave) >= syncInterval {
				// The ring goes on writing: the syncer records what is on
				// the disk by then, so the writer never waits for a flush.
				if err := handOver(ctx, synced, recordWritten, false); err != nil {
					return err
				}
				unsynced, lastSave = 0, time.Now()
			}
		}
	}
	return ctx.Err()
}

// recordWritten asks the syncer to record the chunks the ring has written.
const recordWritten = -1

// handOver gives the syncer the latest request: recordWritten, or the
// count of all chunks once they are flushed. A request it has not taken
// yet is replaced, so the writer never waits for a sync, except for the
// last, which the syncer must take.
func handOver(ctx context.Context, synced chan int, n int, last bool) error {
	if !last {
		select {
		case <-synced:
		default:
		}
	}
	select {
	case synced <- n: // the writer is the only sender: never waits unless last
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// syncer makes the chunks on the disk durable, then records them. It runs
// beside the writer, so a slow sync does not stall the pipeline.
func (r *run) syncer(synced <-chan int) error {
	cs, done := r.idx.Chunks, r.start
	for n := range synced {
		if n == recordWritten {
			// The chunks that end where the ring's completed writes end,
			// read before the sync, so the sync covers them.
			w := r.out.Written() - r.o.TargetOffset
			n = sort.Search(len(cs), func(i int) bool { return cs[i].Offset+cs[i].Length > w })
		}
		if n <= done {
			continue
		}
		if err := r.checkpoint(n); err != nil {
			return err
		}
		done = n
	}
	return nil
}

// openSink opens the target for writing from raw offset off of the slot:
// a disk or a file is written through a descriptor of its own with
// O_DIRECT (stream.OpenSequential); any other target through its WriteAt.
func (r *run) openSink(off int64, sz stream.SequentialSizes) (*stream.Sequential, error) {
	if f, ok := r.o.Target.(interface{ Name() string }); ok {
		s, err := stream.OpenSequential(f.Name(), r.o.TargetOffset+off, sz)
		if err != nil {
			return nil, fmt.Errorf("open target: %w", err)
		}
		return s, nil
	}
	return stream.NewSequential(r.o.Target, r.o.TargetOffset+off, sz)
}

// readTarget copies chunk j.i into its slot from where the same bytes were
// written before, and checks them.
func (r *run) readTarget(j *job, off int64) error {
	c := r.idx.Chunks[j.i]
	if _, err := r.out.ReadAt(j.slot.Buf, r.o.TargetOffset+off); err != nil {
		return fmt.Errorf("chunk %d: read its copy at %d: %w", j.i, r.o.TargetOffset+off, err)
	}
	if sha256.Sum256(j.slot.Buf) != c.SHA256 {
		return fmt.Errorf("chunk %d: its copy on %s at %d does not match the index", j.i, r.targetName(), r.o.TargetOffset+off)
	}
	r.n.reused.Add(c.Length)
	return nil
}

// checkpoint makes the first n chunks durable, then records them.
func (r *run) checkpoint(n int) error {
	if err := r.o.Target.Sync(); err != nil {
		return fmt.Errorf("sync target: %w", err)
	}
	return r.save(n)
}

// verify reads back, chunk by chunk, what this run did not write itself
// (the chunks an earlier run wrote and the journal recorded), or the whole
// slot with Options.ReadBack, and compares each chunk with the index. A
// target that is a disk or a file is read around the page cache
// (stream.DirectReader), so the bytes hashed are the disk's.
// The chunks this run wrote were hashed before they were written, and the
// chunks of an index tile the image, so the slot then holds exactly the
// image the index (signed through the manifest) describes.
func (r *run) verify(ctx context.Context) error {
	n := r.start
	if r.o.ReadBack {
		n = len(r.idx.Chunks)
	}
	if n == 0 {
		return nil
	}
	cs := r.idx.Chunks
	var src io.ReaderAt = r.o.Target
	if f, ok := r.o.Target.(interface{ Name() string }); ok {
		d, err := stream.OpenDirectReader(f.Name())
		if err != nil {
			return fmt.Errorf("verify slot: %w", err)
		}
		defer d.Close()
		src = d
	}
	var buf []byte
	for i, c := range cs[:n] {
		if err := ctx.Err(); err != nil {
			return err
		}
		buf = grow(buf, c.Length)
		at := r.o.TargetOffset + c.Offset
		if _, err := src.ReadAt(buf, at); err != nil {
			return fmt.Errorf("verify slot: read back chunk %d from %s at %d: %w", i, r.targetName(), at, bare(err))
		}
		if sha256.Sum256(buf) != c.SHA256 {
			return fmt.Errorf("%w: chunk %d (raw %d+%d) read back from %s at %d differs from the index", ErrSlotMismatch, i, c.Offset, c.Length, r.targetName(), at)
		}
	}
	return nil
}

// targetName names the target in errors: its device or file.
func (r *run) targetName() string {
	if f, ok := r.o.Target.(interface{ Name() string }); ok {
		return f.Name()
	}
	return "the target"
}

// grow returns b resized to n bytes, reusing its array when it is big enough.
func grow(b []byte, n int64) []byte {
	if int64(cap(b)) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// frameRing holds the frames between the fetcher, which takes room for
// them in chunk order, and the writer, which gives it back in the same
// order once their chunks are decoded. It is mapped outside the Go heap.
type frameRing struct {
	mem   []byte
	head  int64        // bytes taken since the start (the fetcher's)
	tail  atomic.Int64 // bytes given back (the writer's)
	freed chan struct{}
}

// newFrameRing maps a ring of n bytes; n must be at least twice the
// largest frame, so a frame that skips the ring's end always fits.
func newFrameRing(n int64) (*frameRing, error) {
	mem, err := unix.Mmap(-1, 0, int(n), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("map %d bytes for frames: %w", n, err)
	}
	return &frameRing{mem: mem, freed: make(chan struct{}, 1)}, nil
}

// take returns room for n contiguous bytes and the ring bytes it uses (a
// frame does not wrap: the room left at the ring's end is skipped), or
// false when the ring is full.
func (f *frameRing) take(n int64) ([]byte, int64, bool) {
	size := int64(len(f.mem))
	p, skip := f.head%size, int64(0)
	if p+n > size {
		p, skip = 0, size-p
	}
	if f.head+skip+n-f.tail.Load() > size {
		return nil, 0, false
	}
	f.head += skip + n
	return f.mem[p : p+n : p+n], skip + n, true
}

// wait is take that waits for room.
func (f *frameRing) wait(ctx context.Context, n int64) ([]byte, int64, error) {
	for {
		if b, used, ok := f.take(n); ok {
			return b, used, nil
		}
		select {
		case <-f.freed:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
}

// give gives back the ring bytes of the oldest frame taken.
func (f *frameRing) give(used int64) {
	if used == 0 {
		return
	}
	f.tail.Add(used)
	select {
	case f.freed <- struct{}{}:
	default:
	}
}

func (f *frameRing) close() { unix.Munmap(f.mem) }

// bare drops what an *os.PathError repeats, its operation and path: the
// message names the device itself.
func bare(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
