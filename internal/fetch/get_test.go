package fetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twinroot/twinroot/internal/refusal"
	"github.com/twinroot/twinroot/internal/source"
)

// paced yields its bytes n at a time, every gap, until its context ends.
type paced struct {
	ctx  context.Context
	data []byte
	n    int
	gap  time.Duration
}

func (p *paced) Read(b []byte) (int, error) {
	if len(p.data) == 0 {
		return 0, io.EOF
	}
	select {
	case <-time.After(p.gap):
	case <-p.ctx.Done():
		return 0, p.ctx.Err()
	}
	k := copy(b[:min(len(b), p.n)], p.data)
	p.data = p.data[k:]
	return k, nil
}

func (p *paced) Close() error { return nil }

// TestWatchRate: a body slower than the floor rate is cut, though it never
// goes quiet for a whole stall time-out; one at the floor or faster is
// not, nor one whose reader stops reading for longer than the time-out.
func TestWatchRate(t *testing.T) {
	const stall, rate = 100 * time.Millisecond, 1 << 10 // a window must bring 102 bytes
	data := bytes.Repeat([]byte("twinroot"), 38)
	for _, tc := range []struct {
		name  string
		n     int
		gap   time.Duration
		pause time.Duration // between the reader's Reads
		cut   bool
	}{
		{"drip", 1, 10 * time.Millisecond, 0, true},
		{"slow but above the floor", 40, 20 * time.Millisecond, 0, false},
		{"fast, read slowly", 100, 0, 3 * stall / 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, err := watch(context.Background(), stall, rate, int64(len(data)), nil, func(ctx context.Context) (io.ReadCloser, error) {
				return &paced{ctx: ctx, data: data, n: tc.n, gap: tc.gap}, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			defer body.Close()
			began := time.Now()
			var got []byte
			buf := make([]byte, 64)
			for {
				k, err := body.Read(buf)
				got = append(got, buf[:k]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					if !tc.cut || !errors.Is(err, errStalled) || !strings.Contains(err.Error(), "less than 102") {
						t.Fatalf("after %d bytes and %v: %v", len(got), time.Since(began), err)
					}
					if took := time.Since(began); took > 3*stall {
						t.Errorf("cut after %v, want about %v", took, stall)
					}
					return
				}
				time.Sleep(tc.pause)
			}
			if tc.cut || !bytes.Equal(got, data) {
				t.Errorf("read %d bytes whole (equal %v) in %v; cut expected: %v", len(got), bytes.Equal(got, data), time.Since(began), tc.cut)
			}
		})
	}
}

// scripted answers Get with one answer after the other, the last again
// and again, and counts the requests.
type scripted struct {
	source.Source
	mu       sync.Mutex
	answers  []func(ctx context.Context) (io.ReadCloser, error)
	requests int
	etags    []string
}

func (s *scripted) Get(ctx context.Context, key, etag string) (io.ReadCloser, string, error) {
	s.mu.Lock()
	a := s.answers[min(s.requests, len(s.answers)-1)]
	s.requests++
	s.etags = append(s.etags, etag)
	s.mu.Unlock()
	rc, err := a(ctx)
	return rc, `"e"`, err
}

func body(b string) func(context.Context) (io.ReadCloser, error) {
	return func(context.Context) (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(b)), nil }
}

func fails(err error) func(context.Context) (io.ReadCloser, error) {
	return func(context.Context) (io.ReadCloser, error) { return nil, err }
}

func stalls(ctx context.Context) (io.ReadCloser, error) {
	return &paced{ctx: ctx, data: []byte("x"), n: 1, gap: time.Hour}, nil
}

// TestGet: transient failures are retried within the policy, permanent
// ones are not, a body the check refuses is fetched once more whole (and
// unconditionally), and a second refusal is the answer.
func TestGet(t *testing.T) {
	check := func(b []byte) error {
		if string(b) != "good" {
			return fmt.Errorf("%w: %q", refusal.ErrMismatch, b)
		}
		return nil
	}
	g := Guard{StallTimeout: 50 * time.Millisecond, Retry: noWait(3)}
	for _, tc := range []struct {
		name     string
		answers  []func(context.Context) (io.ReadCloser, error)
		etag     string
		want     error // nil: "good" is returned
		requests int
	}{
		{"good", []func(context.Context) (io.ReadCloser, error){body("good")}, "", nil, 1},
		{"a 503, a stall, then good", []func(context.Context) (io.ReadCloser, error){fails(errors.New("503 SlowDown")), stalls, body("good")}, "", nil, 3},
		{"transient until the policy gives up", []func(context.Context) (io.ReadCloser, error){fails(errors.New("reset"))}, "", errors.New("giving up after 3 tries"), 3},
		{"denied", []func(context.Context) (io.ReadCloser, error){fails(source.ErrDenied)}, "", source.ErrDenied, 1},
		{"not modified", []func(context.Context) (io.ReadCloser, error){fails(source.ErrNotModified)}, `"e"`, source.ErrNotModified, 1},
		{"flipped once", []func(context.Context) (io.ReadCloser, error){body("gooe"), body("good")}, `"e"`, nil, 2},
		{"other bytes", []func(context.Context) (io.ReadCloser, error){body("other")}, "", refusal.ErrMismatch, 2},
		{"too large", []func(context.Context) (io.ReadCloser, error){body(strings.Repeat("x", 100))}, "", refusal.ErrMismatch, 2},
		{"flipped, then failures", []func(context.Context) (io.ReadCloser, error){body("gooe"), fails(errors.New("reset"))}, "", errors.New("giving up after 3 tries"), 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &scripted{answers: tc.answers}
			b, _, err := Get(context.Background(), src, "stable/latest.json", tc.etag, 64, g, check)
			switch {
			case tc.want == nil && (err != nil || string(b) != "good"):
				t.Errorf("Get = %q, %v; want good", b, err)
			case tc.want != nil && (err == nil || !errors.Is(err, tc.want) && !strings.Contains(err.Error(), tc.want.Error())):
				t.Errorf("Get = %q, %v; want %v", b, err, tc.want)
			}
			if src.requests != tc.requests {
				t.Errorf("%d requests, want %d", src.requests, tc.requests)
			}
			if src.requests > 1 && tc.etag != "" && src.etags[1] != "" {
				t.Errorf("the second request asked with ETag %q: a body fetched again is fetched whole", src.etags[1])
			}
		})
	}
}
