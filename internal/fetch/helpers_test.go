package fetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twinroot/twinroot/internal/chunk"
	"github.com/twinroot/twinroot/internal/source"
	"github.com/twinroot/twinroot/internal/testroot"
)

// smallParams cut chunks of about 20 KiB, so a few MiB make hundreds.
var smallParams = chunk.Params{Polynomial: chunk.Polynomial, MinSize: 4 << 10, MaxSize: 64 << 10, AverageBits: 14}

// mixed returns n deterministic bytes as in a filesystem image: random
// stretches, text, program-like runs and zeros (zeros make repeated chunks).
func mixed(seed uint64, n int) []byte {
	return testroot.Mixed(seed, n, testroot.MixOptions{Spread: 192 << 10, Programs: true})
}

// edit returns a copy of b changed in a few places: bytes overwritten at
// three offsets, 3000 bytes inserted at one and 1000 deleted at another.
func edit(b []byte, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	out := bytes.Clone(b)
	for _, at := range []int{len(b) / 7, len(b) / 2, len(b) * 5 / 6} {
		for k := range 200 {
			out[at+k] ^= byte(1 + r.IntN(255))
		}
	}
	ins := make([]byte, 3000)
	for k := range ins {
		ins[k] = byte(r.Uint32())
	}
	at := len(out) / 3
	out = append(out[:at], append(ins, out[at:]...)...)
	del := len(out) * 2 / 3
	return append(out[:del], out[del+1000:]...)
}

// release is one published version in a file:// store.
type release struct {
	dir   string // the store
	key   string // of the object
	raw   []byte
	idx   *chunk.Index
	store source.Source
}

// publish builds raw's object and index with p and stores the object under
// dir at key.
func publish(t testing.TB, dir, key string, raw []byte, p chunk.Params) *release {
	t.Helper()
	path := filepath.Join(dir, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := chunk.BuildWith(context.Background(), bytes.NewReader(raw), f, p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	src, err := source.Open(context.Background(), "file://"+dir, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &release{dir: dir, key: key, raw: raw, idx: idx, store: src}
}

// indexID is what the journal records for idx.
func indexID(t testing.TB, idx *chunk.Index) [sha256.Size]byte {
	t.Helper()
	b, err := idx.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// noWait retries up to tries times at once.
func noWait(tries int) RetryFunc {
	return func(attempt int, _ error) (time.Duration, bool) { return 0, attempt < tries }
}

// crashDisk is a disk in memory that loses writes on a power cut: what was
// written since the last Sync survives whole, in part or not at all.
type crashDisk struct {
	mu      sync.Mutex
	data    []byte // what reads see
	durable []byte // what survives a crash
	dirty   [][2]int64
}

func newCrashDisk(size int) *crashDisk {
	return &crashDisk{data: make([]byte, size), durable: make([]byte, size)}
}

func (d *crashDisk) ReadAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off >= int64(len(d.data)) {
		return 0, io.EOF
	}
	n := copy(p, d.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (d *crashDisk) WriteAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off+int64(len(p)) > int64(len(d.data)) {
		return 0, fmt.Errorf("write [%d, %d) past the end of the disk (%d)", off, off+int64(len(p)), len(d.data))
	}
	copy(d.data[off:], p)
	d.dirty = append(d.dirty, [2]int64{off, int64(len(p))})
	return len(p), nil
}

func (d *crashDisk) Sync() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, w := range d.dirty {
		copy(d.durable[w[0]:w[0]+w[1]], d.data[w[0]:w[0]+w[1]])
	}
	d.dirty = nil
	return nil
}

// crash drops the writes since the last Sync: each is kept, lost, or torn
// (its first part kept).
func (d *crashDisk) crash(r *rand.Rand) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, w := range d.dirty {
		keep := int64(0)
		switch r.IntN(3) {
		case 0:
			keep = w[1]
		case 1:
			keep = r.Int64N(w[1])
		}
		copy(d.data[w[0]+keep:w[0]+w[1]], d.durable[w[0]+keep:w[0]+w[1]])
	}
	d.dirty = nil
	copy(d.durable, d.data)
}

func (d *crashDisk) bytes(off, n int64) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return bytes.Clone(d.data[off : off+n])
}
