package stream

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// testSizes make a small ring, so the tests wrap around it many times.
var testSizes = SequentialSizes{Ring: 512 << 10, Slot: 150 << 10, Unit: 64 << 10, Write: 128 << 10}

// TestSequential writes random pieces from unaligned offsets, flushing at
// random moments, and checks the file: the written range holds the pieces,
// every byte outside it is what the file held before, and ReadAt returns
// written bytes wherever they are (buffer or disk).
func TestSequential(t *testing.T) {
	dirs := map[string]string{"disk": t.TempDir()}
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		dirs["tmpfs"] = "/dev/shm" // refuses O_DIRECT: the buffered path
	}
	for name, dir := range dirs {
		t.Run(name, func(t *testing.T) {
			for seed := range uint64(12) {
				rng := rand.New(rand.NewPCG(seed, 1))
				size := 3*testSizes.Ring + rng.IntN(testSizes.Ring)
				before := make([]byte, size)
				for i := range before {
					before[i] = byte(rng.Uint32())
				}
				path := filepath.Join(dir, "sequential-test.img")
				if err := os.WriteFile(path, before, 0o600); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.Remove(path) })
				start := int64(rng.IntN(3 * Block))
				if seed%3 == 0 {
					start = int64(rng.IntN(4)) * Block
				}
				length := int64(2*testSizes.Ring + rng.IntN(testSizes.Ring))
				want := append([]byte(nil), before...)
				s, err := OpenSequential(path, start, testSizes)
				if err != nil {
					t.Fatal(err)
				}
				if name == "disk" && !s.Direct() {
					t.Errorf("seed %d: O_DIRECT not used on %s", seed, dir)
				}
				for off := start; off < start+length; {
					n := min(int64(1+rng.IntN(150<<10)), start+length-off)
					p := make([]byte, n)
					for i := range p {
						p[i] = byte(rng.Uint32())
					}
					if _, err := s.Write(p); err != nil {
						t.Fatalf("seed %d: write at %d: %v", seed, off, err)
					}
					copy(want[off:], p)
					off += n
					if got := s.Offset(); got != off {
						t.Fatalf("seed %d: Offset() = %d, want %d", seed, got, off)
					}
					if rng.IntN(4) == 0 {
						if err := s.Flush(); err != nil {
							t.Fatalf("seed %d: flush: %v", seed, err)
						}
					}
					if rng.IntN(3) == 0 {
						// A copy of an earlier piece, as fetch reads one.
						at := start + rng.Int64N(off-start)
						q := make([]byte, min(off-at, int64(1+rng.IntN(100<<10))))
						if _, err := s.ReadAt(q, at); err != nil {
							t.Fatalf("seed %d: ReadAt(%d, %d): %v", seed, len(q), at, err)
						}
						if !bytes.Equal(q, want[at:at+int64(len(q))]) {
							t.Fatalf("seed %d: ReadAt(%d, %d) differs from what was written", seed, len(q), at)
						}
					}
				}
				if _, err := s.ReadAt(make([]byte, 1), s.Offset()); err == nil {
					t.Errorf("seed %d: ReadAt past the written bytes succeeded", seed)
				}
				if err := s.Flush(); err != nil {
					t.Fatal(err)
				}
				if err := s.Sync(); err != nil {
					t.Fatal(err)
				}
				s.Close()
				got, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(want) {
					t.Fatalf("seed %d: file is %d bytes, want %d", seed, len(got), len(want))
				}
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("seed %d (start %d, length %d): byte %d is %#x, want %#x", seed, start, length, i, got[i], want[i])
					}
				}
			}
		})
	}
}

// TestSequentialSlots fills reserved slots from several goroutines in
// random order and commits them in order, as fetch's workers and writer
// do, into a file and into a plain WriterAt, and checks what was written.
func TestSequentialSlots(t *testing.T) {
	for _, kind := range []string{"file", "writerAt"} {
		t.Run(kind, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 9))
			const size = 4 << 20
			before := make([]byte, size)
			for i := range before {
				before[i] = byte(rng.Uint32())
			}
			path := filepath.Join(t.TempDir(), "slots.img")
			if err := os.WriteFile(path, before, 0o600); err != nil {
				t.Fatal(err)
			}
			start := int64(1234)
			var s *Sequential
			var f *os.File
			var err error
			if kind == "file" {
				s, err = OpenSequential(path, start, testSizes)
			} else {
				if f, err = os.OpenFile(path, os.O_RDWR, 0); err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				s, err = NewSequential(f, start, testSizes)
			}
			if err != nil {
				t.Fatal(err)
			}
			want := append([]byte(nil), before...)
			end := int64(size - 777)
			type piece struct {
				sl   Slot
				data []byte
				done chan struct{}
			}
			pieces := make(chan *piece, 16)
			order := make(chan *piece, 16)
			var wg sync.WaitGroup
			for range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for p := range pieces {
						copy(p.sl.Buf, p.data)
						close(p.done)
					}
				}()
			}
			go func() {
				defer close(pieces)
				defer close(order)
				for off := start; off < end; {
					n := min(int64(1+rng.IntN(int(testSizes.Slot))), end-off)
					data := make([]byte, n)
					for i := range data {
						data[i] = byte(rng.Uint32())
					}
					copy(want[off:], data)
					sl, err := s.Reserve(context.Background(), int(n))
					if err != nil {
						t.Error(err)
						return
					}
					if sl.Off != off || len(sl.Buf) != int(n) {
						t.Errorf("Reserve(%d) = [%d, +%d), want [%d, +%d)", n, sl.Off, len(sl.Buf), off, n)
						return
					}
					p := &piece{sl: sl, data: data, done: make(chan struct{})}
					order <- p
					pieces <- p
					off += n
				}
			}()
			for p := range order {
				<-p.done
				if err := s.Commit(p.sl); err != nil {
					t.Fatal(err)
				}
			}
			wg.Wait()
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("byte %d is %#x, want %#x (region [%d, %d))", i, got[i], want[i], start, end)
					}
				}
				t.Fatalf("file is %d bytes, want %d", len(got), len(want))
			}
		})
	}
}
