package chunk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/restic/chunker"
	"golang.org/x/sync/errgroup"

	"github.com/twinroot/twinroot/internal/refusal"
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrMalformed: index bytes break the format of doc.go.
	ErrMalformed = refusal.New("malformed chunk index")
	// ErrCorrupt: a frame of the object does not decode to its chunk
	// (refusal.ErrMismatch: bytes that differ from what was signed).
	ErrCorrupt = refusal.ErrMismatch
	// ErrMismatch: the raw image is not the concatenation of the chunks.
	ErrMismatch = refusal.ErrMismatch
)

// Polynomial is the irreducible polynomial of degree 53 of every twinroot
// chunker, drawn once with chunker.RandomPolynomial. Changing it moves every
// boundary, so no chunk of an image built before would be shared after.
const Polynomial = 0x22adf0250ae3c3

// Limits a parser enforces, whoever wrote the index.
const (
	MaxChunks    = 1 << 20  // chunks in one index (a full 2 GiB slot has about 27 Ki)
	MinChunkSize = 1 << 10  // the smallest MinSize allowed
	MaxChunkSize = 16 << 20 // the largest MaxSize allowed: bounds a decoder's memory
	minAvgBits   = 10
	maxAvgBits   = 24
)

// Params are the chunker parameters, recorded in the index header.
type Params struct {
	Polynomial  uint64
	MinSize     uint32
	MaxSize     uint32
	AverageBits uint32 // a cut where the low AverageBits bits of the fingerprint are zero
	// CutXZ ends a chunk before an xz stream header where one lies
	// MinSize to MaxSize bytes after the chunk's start (doc.go), so the
	// chunks of a squashfs xz image hold whole squashfs blocks.
	CutXZ bool
}

// DefaultParams cut chunks of 16 KiB to 256 KiB: in an xz slot image at
// the xz stream headers that start squashfs's blocks (CutXZ), elsewhere
// where the Rabin fingerprint says, about 80 KiB on average (MinSize +
// 2^AverageBits), close to casync's defaults. Measured by bench/delta on
// two real Debian 13 updates (xz images of 143 MB), the chunks a device
// lacks and the index come to 3.40 MB for an openssl security update and
// 3.00 MB for eight security updates, two packages added and a change of
// configuration, where casync's chunks cost 4.29 MB and 5.52 MB and the
// fingerprint alone, with the same sizes, 4.82 MB and 6.36 MB: a file that
// changes changes its own blocks' chunks, not its neighbours'. A MinSize
// of 4 KiB saved 1 to 5% more for 40% more chunks; 32 KiB cost 5 to 20%
// more. Such an image has about 46 KiB per chunk, and the index costs 56
// bytes per chunk: 172 KiB for it, about 2.6 MiB for a full 2 GiB slot.
var DefaultParams = Params{Polynomial: Polynomial, MinSize: 16 << 10, MaxSize: 256 << 10, AverageBits: 16, CutXZ: true}

// Validate checks p against the limits of the format.
func (p Params) Validate() error {
	pol := chunker.Pol(p.Polynomial)
	switch {
	// Irreducible takes milliseconds: skip it for the known polynomial.
	case pol.Deg() < 9 || pol.Deg() > 53 || (p.Polynomial != Polynomial && !pol.Irreducible()):
		return fmt.Errorf("polynomial %#x is not irreducible of degree 9 to 53", p.Polynomial)
	case p.MinSize < MinChunkSize || p.MaxSize > MaxChunkSize || p.MinSize > p.MaxSize:
		return fmt.Errorf("chunk sizes %d..%d not within %d..%d", p.MinSize, p.MaxSize, MinChunkSize, MaxChunkSize)
	case p.AverageBits < minAvgBits || p.AverageBits > maxAvgBits:
		return fmt.Errorf("average bits %d not within %d..%d", p.AverageBits, minAvgBits, maxAvgBits)
	}
	return nil
}

// Chunk is one entry of the index.
type Chunk struct {
	Offset           int64 // in the raw image
	Length           int64
	CompressedOffset int64 // in the compressed object
	CompressedLength int64
	SHA256           [sha256.Size]byte // of the raw bytes
}

// Index describes a raw image and its compressed object chunk by chunk.
type Index struct {
	Params         Params
	Size           int64             // of the raw image
	CompressedSize int64             // of the object
	SHA256         [sha256.Size]byte // of the whole raw image
	Chunks         []Chunk
}

// Scan cuts raw into chunks with p and calls fn for each, in order, with its
// raw offset, length and SHA-256 (the compressed fields are zero). A device
// scans its running slot with the parameters of a new index to find the
// chunks it already has.
func Scan(ctx context.Context, raw io.Reader, p Params, fn func(Chunk) error) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("chunker parameters: %w", err)
	}
	return split(ctx, raw, p, func(off int64, data []byte) error {
		return fn(Chunk{Offset: off, Length: int64(len(data)), SHA256: sha256.Sum256(data)})
	})
}

// split calls fn with every chunk of raw; data is reused after fn returns.
func split(ctx context.Context, raw io.Reader, p Params, fn func(off int64, data []byte) error) error {
	if p.CutXZ {
		return splitXZ(ctx, raw, p, fn)
	}
	c, done := newChunker(raw, p)
	defer done()
	buf := make([]byte, p.MaxSize)
	var off int64
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		ch, err := c.Next(buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read image at %d: %w", off, err)
		}
		if n >= MaxChunks {
			return fmt.Errorf("image at %d: more than %d chunks", off, MaxChunks)
		}
		if err := fn(off, ch.Data); err != nil {
			return err
		}
		off += int64(ch.Length)
	}
}

// chunkers are kept between splits: a chunker reads through a buffer of
// 512 KiB, which takes longer to allocate and clear than cutting an image
// of a few chunks (a fuzzing execution's) does.
var chunkers = sync.Pool{New: func() any {
	return chunker.NewWithBoundaries(nil, chunker.Pol(Polynomial), uint(DefaultParams.MinSize), uint(DefaultParams.MaxSize))
}}

// newChunker returns a chunker of p over rd, and done, which returns it to
// chunkers.
func newChunker(rd io.Reader, p Params) (c *chunker.Chunker, done func()) {
	c = chunkers.Get().(*chunker.Chunker)
	c.ResetWithBoundaries(rd, chunker.Pol(p.Polynomial), uint(p.MinSize), uint(p.MaxSize))
	c.SetAverageBits(int(p.AverageBits))
	return c, func() {
		c.ResetWithBoundaries(nil, chunker.Pol(p.Polynomial), uint(p.MinSize), uint(p.MaxSize)) // keeps no reader
		chunkers.Put(c)
	}
}

// xzMagic starts every xz stream: the header of each block squashfs
// compresses with xz.
var xzMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0}

// splitXZ is split with CutXZ. It looks at most MaxSize+5 bytes past a
// chunk's start: a chunk ends before the first xz stream header MinSize to
// MaxSize bytes after its start, or, where there is none, where the Rabin
// fingerprint of its own bytes ends it (as split: the chunker restarts at
// every chunk, so a fresh one over the chunk's first MaxSize bytes cuts
// where a continuous one would).
func splitXZ(ctx context.Context, raw io.Reader, p Params, fn func(off int64, data []byte) error) error {
	minSize, maxSize := int(p.MinSize), int(p.MaxSize)
	look := maxSize + len(xzMagic) - 1
	buf := make([]byte, 2*look)
	scratch := make([]byte, 0, maxSize)
	c, done := newChunker(nil, p)
	defer done()
	var window bytes.Reader
	var off int64
	lo, hi, eof := 0, 0, false
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if hi-lo < look && !eof {
			hi = copy(buf, buf[lo:hi])
			lo = 0
			m, err := io.ReadFull(raw, buf[hi:])
			hi += m
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				eof = true
			} else if err != nil {
				return fmt.Errorf("read image at %d: %w", off+int64(hi), err)
			}
		}
		if lo == hi {
			return nil
		}
		if n >= MaxChunks {
			return fmt.Errorf("image at %d: more than %d chunks", off, MaxChunks)
		}
		data := buf[lo:hi]
		cut := -1
		if len(data) > minSize {
			if i := bytes.Index(data[minSize:min(len(data), look)], xzMagic); i >= 0 {
				cut = minSize + i
			}
		}
		if cut < 0 {
			window.Reset(data[:min(len(data), maxSize)])
			c.ResetWithBoundaries(&window, chunker.Pol(p.Polynomial), uint(minSize), uint(maxSize))
			c.SetAverageBits(int(p.AverageBits))
			ch, err := c.Next(scratch)
			if err != nil {
				return fmt.Errorf("chunk image at %d: %w", off, err)
			}
			cut = int(ch.Length)
		}
		if err := fn(off, data[:cut]); err != nil {
			return err
		}
		off += int64(cut)
		lo += cut
	}
}

// Build reads the raw image, writes its compressed object to zst and returns
// its index, with DefaultParams.
func Build(ctx context.Context, raw io.Reader, zst io.Writer) (*Index, error) {
	return BuildWith(ctx, raw, zst, DefaultParams)
}

// BuildWith is Build with chosen parameters.
func BuildWith(ctx context.Context, raw io.Reader, zst io.Writer, p Params) (*Index, error) {
	return build(ctx, raw, zst, p, runtime.GOMAXPROCS(0))
}

// job is one chunk on its way through the compressors; done is closed when
// frame and sum are set.
type job struct {
	off   int64
	data  []byte
	frame []byte
	sum   [sha256.Size]byte
	done  chan struct{}
}

// build cuts chunks on one goroutine, hashes and compresses them on workers,
// and writes the frames in order on another. At most 2*workers+1 chunks and
// their frames are in memory at once, whatever the image size.
func build(ctx context.Context, raw io.Reader, zst io.Writer, p Params, workers int) (*Index, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("chunker parameters: %w", err)
	}
	enc := encoder()
	g, gctx := errgroup.WithContext(ctx)
	jobs := make(chan *job)
	order := make(chan *job, 2*workers)
	// Buffers go round between the stages, so memory stays flat.
	free := make(chan []byte, 2*workers+1)
	frames := make(chan []byte, cap(free))
	for range cap(free) {
		free <- make([]byte, 0, p.MaxSize)
		frames <- make([]byte, 0, maxFrame(int64(p.MaxSize)))
	}
	whole := sha256.New()
	g.Go(func() error {
		defer close(jobs)
		defer close(order)
		return split(gctx, io.TeeReader(raw, whole), p, func(off int64, data []byte) error {
			var j job
			select {
			case buf := <-free:
				j = job{off: off, data: append(buf[:0], data...), done: make(chan struct{})}
			case <-gctx.Done():
				return gctx.Err()
			}
			for _, ch := range []chan *job{order, jobs} {
				select {
				case ch <- &j:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			return nil
		})
	})
	for range workers {
		g.Go(func() error {
			for j := range jobs {
				j.sum = sha256.Sum256(j.data)
				j.frame = enc.EncodeAll(j.data, (<-frames)[:0])
				close(j.done)
			}
			return nil
		})
	}

	idx := &Index{Params: p}
	g.Go(func() error {
		for j := range order {
			select {
			case <-j.done:
			case <-gctx.Done():
				return gctx.Err()
			}
			if _, err := zst.Write(j.frame); err != nil {
				return fmt.Errorf("write object at %d: %w", idx.CompressedSize, err)
			}
			idx.Chunks = append(idx.Chunks, Chunk{
				Offset: j.off, Length: int64(len(j.data)),
				CompressedOffset: idx.CompressedSize, CompressedLength: int64(len(j.frame)),
				SHA256: j.sum,
			})
			idx.Size += int64(len(j.data))
			idx.CompressedSize += int64(len(j.frame))
			free <- j.data
			frames <- j.frame
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("build chunks: %w", err)
	}
	copy(idx.SHA256[:], whole.Sum(nil))
	return idx, nil
}

// encoder compresses chunks for build; its EncodeAll is safe for concurrent
// use, GOMAXPROCS calls at a time. Made once: its tables are megabytes to
// allocate and clear, more than a fuzzing execution's whole work.
var encoder = sync.OnceValue(func() *zstd.Encoder {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithEncoderCRC(true))
	if err != nil {
		panic(fmt.Sprintf("zstd encoder with constant options: %v", err))
	}
	return e
})

// decoder decodes frames of at most MaxChunkSize bytes; its DecodeAll is safe
// for concurrent use. It skips the frames' own checksums: every decoded
// chunk is checked against its SHA-256 in the index, which a frame's
// checksum cannot add to.
var decoder = sync.OnceValue(func() *zstd.Decoder {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0),
		zstd.WithDecoderMaxMemory(MaxChunkSize), zstd.WithDecoderMaxWindow(MaxChunkSize),
		zstd.WithDecodeAllCapLimit(true), zstd.IgnoreChecksum(true))
	if err != nil {
		panic(fmt.Sprintf("zstd decoder with constant options: %v", err))
	}
	return d
})

// DecodeChunk decompresses the frame of c and checks its length and SHA-256.
func DecodeChunk(c Chunk, frame []byte) ([]byte, error) {
	return AppendChunk(nil, c, frame)
}

// AppendChunk is DecodeChunk appending to dst, so a caller can reuse one
// buffer for every chunk.
func AppendChunk(dst []byte, c Chunk, frame []byte) ([]byte, error) {
	if int64(len(frame)) != c.CompressedLength {
		return dst, fmt.Errorf("%w: frame at %d is %d bytes, index says %d", ErrCorrupt, c.CompressedOffset, len(frame), c.CompressedLength)
	}
	if c.Length < 0 || c.Length > MaxChunkSize {
		return dst, fmt.Errorf("%w: chunk at %d: length %d out of range", ErrCorrupt, c.Offset, c.Length)
	}
	start := len(dst)
	if cap(dst)-start < int(c.Length) {
		dst = append(make([]byte, 0, start+int(c.Length)), dst...)
	}
	// The capacity limit makes the decoder refuse a frame that would write
	// more than the chunk, whatever its header claims.
	out, err := decoder().DecodeAll(frame, dst[:start:start+int(c.Length)])
	if err != nil {
		return dst, fmt.Errorf("%w: frame at %d does not decompress: %v", ErrCorrupt, c.CompressedOffset, err)
	}
	if int64(len(out)-start) != c.Length {
		return dst, fmt.Errorf("%w: frame at %d decompresses to %d bytes, index says %d", ErrCorrupt, c.CompressedOffset, len(out)-start, c.Length)
	}
	if sha256.Sum256(out[start:]) != c.SHA256 {
		return dst, fmt.Errorf("%w: frame at %d: SHA-256 of its %d bytes differs from the index", ErrCorrupt, c.CompressedOffset, c.Length)
	}
	// The decoder got a capacity cut to the chunk; hand back dst's whole
	// array, so a caller reusing it does not allocate for a larger chunk.
	if cap(out) > 0 && cap(dst) > 0 && &out[:cap(out)][0] == &dst[:cap(dst)][0] {
		out = dst[:len(out)]
	}
	return out, nil
}

// Shared returns how many raw bytes of b's chunks are also chunks of a (same
// SHA-256): what a device running a does not fetch to install b.
func Shared(a, b *Index) int64 {
	have := make(map[[sha256.Size]byte]bool, len(a.Chunks))
	for _, c := range a.Chunks {
		have[c.SHA256] = true
	}
	var n int64
	for _, c := range b.Chunks {
		if have[c.SHA256] {
			n += c.Length
		}
	}
	return n
}
