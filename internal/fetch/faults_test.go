package fetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twinroot/twinroot/internal/source"
)

// flakySource fails requests the way networks and stores do: a 5xx answer,
// a body cut short, a connection reset, a byte flipped on the wire (never
// twice at the same place, or the chunk would be rightly refused).
type flakySource struct {
	source.Source
	mu                          sync.Mutex
	r                           *rand.Rand
	flipped                     []int64
	errs, truncs, resets, flips int
	requests                    int
}

func (f *flakySource) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	p := f.r.Float64()
	if p < 0.15 {
		f.errs++
		return nil, fmt.Errorf("get [%d, %d) of %s: server answered 503 Slow Down", off, off+n, key)
	}
	rc, err := f.Source.GetRange(ctx, key, off, n)
	if err != nil {
		return nil, err
	}
	switch {
	case p < 0.30:
		f.truncs++
		return &cutBody{rc, f.r.Int64N(n), io.ErrUnexpectedEOF}, nil
	case p < 0.40:
		f.resets++
		return &cutBody{rc, f.r.Int64N(n), errors.New("read tcp 127.0.0.1:9000: connection reset by peer")}, nil
	case p < 0.55:
		at := off + f.r.Int64N(n)
		for _, x := range f.flipped {
			if x >= off && x < off+n {
				return rc, nil
			}
		}
		f.flipped = append(f.flipped, at)
		f.flips++
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		b[at-off] ^= 0x40
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	return rc, nil
}

// cutBody yields left bytes, then err.
type cutBody struct {
	io.ReadCloser
	left int64
	err  error
}

func (c *cutBody) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, c.err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.ReadCloser.Read(p)
	c.left -= int64(n)
	return n, err
}

func TestFlakySource(t *testing.T) {
	v1 := mixed(12, 6<<20)
	v2 := edit(v1, 13)
	rel := publish(t, t.TempDir(), "stable/3.0.0/slot.img.zst", v2, smallParams)
	for _, delta := range []bool{false, true} {
		t.Run(fmt.Sprintf("delta=%v", delta), func(t *testing.T) {
			flaky := &flakySource{Source: rel.store, r: rand.New(rand.NewPCG(14, 15))}
			disk := newCrashDisk(len(v2))
			o := Options{
				Source: flaky, ObjectKey: rel.key, Index: rel.idx, Target: disk,
				MaxRequest: 64 << 10, MaxGap: 16 << 10, Retry: noWait(20),
			}
			if delta {
				o.Running, o.RunningSize = bytes.NewReader(v1), int64(len(v1))
			}
			st, err := Apply(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d requests: %d answered 503, %d truncated, %d reset, %d with a flipped byte; stats %+v",
				flaky.requests, flaky.errs, flaky.truncs, flaky.resets, flaky.flips, st)
			if !bytes.Equal(disk.bytes(0, int64(len(v2))), v2) {
				t.Fatalf("slot differs from the image")
			}
			if st.Retries < int64(flaky.errs+flaky.truncs+flaky.resets) || st.Retries == 0 {
				t.Errorf("%d retries, want at least the %d failed requests", st.Retries, flaky.errs+flaky.truncs+flaky.resets)
			}
			if !delta && (flaky.flips == 0 || st.Refetched == 0) {
				t.Errorf("%d flipped bytes, %d chunks fetched again: want both", flaky.flips, st.Refetched)
			}
		})
	}
}

// stallSource never answers or never sends a byte on its first requests,
// until the request is cancelled.
type stallSource struct {
	source.Source
	mu     sync.Mutex
	stalls int
}

func (s *stallSource) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	s.mu.Lock()
	s.stalls--
	stall := s.stalls
	s.mu.Unlock()
	switch {
	case stall >= 2:
		<-ctx.Done()
		return nil, ctx.Err()
	case stall >= 0:
		rc, err := s.Source.GetRange(ctx, key, off, n)
		if err != nil {
			return nil, err
		}
		return stalledBody{rc, ctx}, nil
	}
	return s.Source.GetRange(ctx, key, off, n)
}

// stalledBody sends a few bytes, then nothing until its request is
// cancelled.
type stalledBody struct {
	io.ReadCloser
	ctx context.Context
}

func (s stalledBody) Read(p []byte) (int, error) {
	<-s.ctx.Done()
	return 0, s.ctx.Err()
}

func TestStalledRequestsAreRetried(t *testing.T) {
	raw := mixed(16, 1<<20)
	rel := publish(t, t.TempDir(), "stable/1.0.0/slot.img.zst", raw, smallParams)
	disk := newCrashDisk(len(raw))
	src := &stallSource{Source: rel.store, stalls: 4}
	var errs []string
	st, err := Apply(context.Background(), Options{
		Source: src, ObjectKey: rel.key, Index: rel.idx, Target: disk,
		StallTimeout: 50 * time.Millisecond,
		Retry: func(attempt int, err error) (time.Duration, bool) {
			errs = append(errs, err.Error())
			return 0, attempt < 10
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Retries != 4 {
		t.Errorf("%d retries, want 4 (2 unanswered requests, 2 silent bodies)", st.Retries)
	}
	for _, e := range errs {
		if !strings.Contains(e, "stalled: no byte for 50ms") {
			t.Errorf("retried error %q does not name the stall", e)
		}
	}
	if !bytes.Equal(disk.bytes(0, int64(len(raw))), raw) {
		t.Errorf("slot differs from the image")
	}
}

// TestOverHTTP applies through the https/http source against a real HTTP
// server on 127.0.0.1 that answers some requests with 500 or 503 and cuts
// some bodies short.
func TestOverHTTP(t *testing.T) {
	v1 := mixed(17, 4<<20)
	v2 := edit(v1, 18)
	dir := t.TempDir()
	rel := publish(t, dir, "stable/4.0.0/slot.img.zst", v2, smallParams)
	var mu sync.Mutex
	var n, faults int
	files := http.FileServer(http.Dir(dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		n++
		k := n
		mu.Unlock()
		switch k % 4 {
		case 1:
			mu.Lock()
			faults++
			mu.Unlock()
			http.Error(w, "try later", []int{http.StatusInternalServerError, http.StatusServiceUnavailable}[k%8/4])
			return
		case 2:
			mu.Lock()
			faults++
			mu.Unlock()
			files.ServeHTTP(&cutWriter{ResponseWriter: w, left: 1000}, req)
			return
		}
		files.ServeHTTP(w, req)
	}))
	defer srv.Close()
	src, err := source.Open(context.Background(), srv.URL, source.Options{HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	disk := newCrashDisk(len(v2))
	j := FileJournal{Path: filepath.Join(t.TempDir(), "journal")}
	st, err := Apply(context.Background(), Options{
		Source: src, ObjectKey: rel.key, Index: rel.idx, Target: disk, Journal: j,
		Running: bytes.NewReader(v1), RunningSize: int64(len(v1)),
		MaxRequest: 256 << 10, Retry: noWait(5),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d HTTP requests, %d faulty; stats %+v", n, faults, st)
	if st.Retries < int64(faults) {
		t.Errorf("%d retries, %d faulty answers", st.Retries, faults)
	}
	if !bytes.Equal(disk.bytes(0, int64(len(v2))), v2) {
		t.Errorf("slot differs from the image")
	}
	if _, err := Apply(context.Background(), Options{
		Source: src, ObjectKey: "stable/4.0.1/slot.img.zst", Index: rel.idx, Target: disk, Retry: noWait(5),
	}); !errors.Is(err, source.ErrNotFound) {
		t.Errorf("Apply of a missing object over HTTP: %v, want source.ErrNotFound", err)
	}
}

// cutWriter sends at most left bytes of the body and then ends the
// response, so the client sees a body shorter than its Content-Length.
type cutWriter struct {
	http.ResponseWriter
	left int
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errors.New("cut")
	}
	if len(p) > c.left {
		p = p[:c.left]
	}
	n, err := c.ResponseWriter.Write(p)
	c.left -= n
	if c.left <= 0 && err == nil {
		err = errors.New("cut")
	}
	return n, err
}
