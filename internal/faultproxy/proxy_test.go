package faultproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// origin serves a deterministic 1 MiB object with Range support and
// counts the requests that reach it.
func origin(t *testing.T) (body []byte, addr string, hits *atomic.Int64) {
	t.Helper()
	body = make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range body {
		body[i] = byte(r.Uint32())
	}
	hits = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.ServeContent(w, r, "object", time.Time{}, bytes.NewReader(body))
	}))
	t.Cleanup(srv.Close)
	return body, strings.TrimPrefix(srv.URL, "http://"), hits
}

func start(t *testing.T, o Options) *Proxy {
	t.Helper()
	p, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// get fetches [off, off+n) of the object through p on client c; it returns
// the status, the bytes received and the read error.
func get(c *http.Client, p *Proxy, off, n int64) (int, []byte, error) {
	req, _ := http.NewRequest("GET", p.URL()+"/bucket/object", nil)
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func TestRequestFaults(t *testing.T) {
	body, addr, hits := origin(t)
	const off, n = 1000, 200 << 10
	want := body[off : off+n]
	other := bytes.Repeat([]byte("another object "), 20000)
	for _, tc := range []struct {
		f     Fault
		check func(t *testing.T, status int, got []byte, err error)
	}{
		{Fault{}, func(t *testing.T, status int, got []byte, err error) {
			if err != nil || status != http.StatusPartialContent || !bytes.Equal(got, want) {
				t.Errorf("pass: status %d, %d bytes (equal %v), %v", status, len(got), bytes.Equal(got, want), err)
			}
		}},
		{Fault{Mode: Truncate, After: 5000}, func(t *testing.T, status int, got []byte, err error) {
			if !errors.Is(err, io.ErrUnexpectedEOF) || !bytes.Equal(got, want[:5000]) {
				t.Errorf("truncate: %d bytes (a prefix %v), %v; want 5000 bytes, unexpected EOF", len(got), bytes.HasPrefix(want, got), err)
			}
		}},
		{Fault{Mode: Truncate, After: 1 << 30}, func(t *testing.T, status int, got []byte, err error) {
			if !errors.Is(err, io.ErrUnexpectedEOF) || len(got) != n-1 {
				t.Errorf("truncate past the end: %d bytes, %v; want %d, unexpected EOF", len(got), err, n-1)
			}
		}},
		{Fault{Mode: Reset, After: 70000}, func(t *testing.T, status int, got []byte, err error) {
			if !errors.Is(err, syscall.ECONNRESET) || len(got) > 70000 || !bytes.HasPrefix(want, got) {
				t.Errorf("reset: %d bytes (a prefix %v), %v; want at most 70000, connection reset", len(got), bytes.HasPrefix(want, got), err)
			}
		}},
		{Fault{Mode: Flip, After: 12345}, func(t *testing.T, status int, got []byte, err error) {
			if err != nil || len(got) != n {
				t.Fatalf("flip: %d bytes, %v", len(got), err)
			}
			var diff []int
			for i := range got {
				if got[i] != want[i] {
					diff = append(diff, i)
				}
			}
			if len(diff) != 1 || diff[0] != 12345 || got[12345] != ^want[12345] {
				t.Errorf("flip: bytes differing at %v, want only 12345 inverted", diff)
			}
		}},
		{Fault{Mode: Stall, After: 100, For: 300 * time.Millisecond}, func(t *testing.T, status int, got []byte, err error) {
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("stall: %d bytes (equal %v), %v", len(got), bytes.Equal(got, want), err)
			}
		}},
		{Fault{Mode: Status503}, func(t *testing.T, status int, got []byte, err error) {
			if err != nil || status != http.StatusServiceUnavailable || !bytes.Contains(got, []byte("<Code>SlowDown</Code>")) {
				t.Errorf("503: status %d, body %q, %v", status, got, err)
			}
		}},
		{Fault{Mode: Status500}, func(t *testing.T, status int, got []byte, err error) {
			if err != nil || status != http.StatusInternalServerError || !bytes.Contains(got, []byte("<Code>InternalError</Code>")) {
				t.Errorf("500: status %d, body %q, %v", status, got, err)
			}
		}},
		{Fault{Mode: Status403}, func(t *testing.T, status int, got []byte, err error) {
			if err != nil || status != http.StatusForbidden || !bytes.Contains(got, []byte("<Code>AccessDenied</Code>")) {
				t.Errorf("403: status %d, body %q, %v", status, got, err)
			}
		}},
		{Fault{Mode: Status404}, func(t *testing.T, status int, got []byte, err error) {
			if err != nil || status != http.StatusNotFound || !bytes.Contains(got, []byte("<Code>NoSuchKey</Code>")) {
				t.Errorf("404: status %d, body %q, %v", status, got, err)
			}
		}},
		{Fault{Mode: Drip, After: 3000, N: 5, For: 20 * time.Millisecond}, func(t *testing.T, status int, got []byte, err error) {
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("drip: %d bytes (equal %v), %v", len(got), bytes.Equal(got, want), err)
			}
		}},
		{Fault{Mode: Length, N: 10}, func(t *testing.T, status int, got []byte, err error) {
			// The client waits for 10 more bytes until its time-out.
			if !errors.Is(err, os.ErrDeadlineExceeded) && !strings.Contains(fmt.Sprint(err), "Client.Timeout") || !bytes.Equal(got, want) {
				t.Errorf("content-length +10: %d bytes (equal %v), %v; want all, then a time-out", len(got), bytes.Equal(got, want), err)
			}
		}},
		{Fault{Mode: Length, N: -10}, func(t *testing.T, status int, got []byte, err error) {
			if err != nil || !bytes.Equal(got, want[:n-10]) {
				t.Errorf("content-length -10: %d bytes (a prefix %v), %v; want %d", len(got), bytes.HasPrefix(want, got), err, n-10)
			}
		}},
		{Fault{Mode: Substitute, Body: other}, func(t *testing.T, status int, got []byte, err error) {
			if err != nil || status != http.StatusPartialContent || !bytes.Equal(got, other[off:off+n]) {
				t.Errorf("substitute: status %d, %d bytes (the other object's %v), %v", status, len(got), bytes.Equal(got, other[off:off+n]), err)
			}
		}},
		{Fault{Mode: Substitute, Body: other[:off+100]}, func(t *testing.T, status int, got []byte, err error) {
			if err != nil || status != http.StatusPartialContent || !bytes.Equal(got, other[off:off+100]) {
				t.Errorf("substitute a shorter object: status %d, %d bytes, %v; want its last 100, clipped", status, len(got), err)
			}
		}},
		{Fault{Mode: Substitute, Body: other[:off]}, func(t *testing.T, status int, got []byte, err error) {
			if err != nil || status != http.StatusRequestedRangeNotSatisfiable || !bytes.Contains(got, []byte("<Code>InvalidRange</Code>")) {
				t.Errorf("substitute an object that ends before the range: status %d, body %q, %v; want 416", status, got, err)
			}
		}},
	} {
		t.Run(tc.f.String(), func(t *testing.T) {
			p := start(t, Options{Upstream: addr, Policy: Always(nil, tc.f)})
			c := &http.Client{Transport: &http.Transport{}}
			if tc.f.Mode == Length {
				c.Timeout = 300 * time.Millisecond
			}
			before := hits.Load()
			began := time.Now()
			status, got, err := get(c, p, off, n)
			took := time.Since(began)
			tc.check(t, status, got, err)
			forwarded := hits.Load() - before
			cnt := p.Counts()
			switch tc.f.Mode {
			case Status500, Status503:
				if forwarded != 0 {
					t.Errorf("%d requests reached the upstream, want 0", forwarded)
				}
			case Status403, Status404:
				if forwarded != 0 {
					t.Errorf("%d requests reached the upstream, want 0", forwarded)
				}
			case Stall:
				if took < tc.f.For {
					t.Errorf("stalled request took %v, want at least %v", took, tc.f.For)
				}
			case Drip:
				if d := time.Duration(tc.f.N) * tc.f.For; took < d {
					t.Errorf("dripping request took %v, want at least %v", took, d)
				}
			}
			if cnt.Requests != 1 || cnt.Faults() != map[bool]int{true: 0, false: 1}[tc.f.Mode == Pass] {
				t.Errorf("counts %v", cnt)
			}
			switch tc.f.Mode {
			case Pass, Stall, Flip, Drip, Substitute, Status500, Status503, Status403, Status404:
				// The connection stays usable.
				p.SetPolicy(nil)
				if status, got, err := get(c, p, 0, 10); err != nil || !bytes.Equal(got, body[:10]) {
					t.Errorf("next request on the connection: %d, %q, %v", status, got, err)
				}
			}
		})
	}
}

// TestDNS: a name looked up through the server's resolver does not
// resolve, as NXDOMAIN from a real resolver.
func TestDNS(t *testing.T) {
	d, err := StartDNS()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_, err = d.Resolver().LookupHost(context.Background(), "store.twinroot.invalid")
	var de *net.DNSError
	if !errors.As(err, &de) || !de.IsNotFound {
		t.Fatalf("LookupHost = %v, want a DNS error saying no such host", err)
	}
	if d.Queries() == 0 {
		t.Error("the server answered no query")
	}
}

func TestConnFaults(t *testing.T) {
	body, addr, hits := origin(t)
	t.Run("reset", func(t *testing.T) {
		p := start(t, Options{Upstream: addr, ConnPolicy: func(conn int, _ *rand.Rand) Fault {
			if conn == 1 {
				return Fault{Mode: Reset, After: 3000}
			}
			return Fault{}
		}})
		c := &http.Client{Transport: &http.Transport{}}
		if _, got, err := get(c, p, 0, 100<<10); !errors.Is(err, syscall.ECONNRESET) || !bytes.HasPrefix(body, got) {
			t.Errorf("first connection: %d bytes, %v; want connection reset", len(got), err)
		}
		if _, got, err := get(c, p, 0, 100<<10); err != nil || !bytes.Equal(got, body[:100<<10]) {
			t.Errorf("second connection: %d bytes, %v", len(got), err)
		}
		if cnt := p.Counts(); cnt.Conns != 2 || cnt.Reset != 1 {
			t.Errorf("counts %v", cnt)
		}
	})
	t.Run("503", func(t *testing.T) {
		p := start(t, Options{Upstream: addr, ConnPolicy: func(int, *rand.Rand) Fault { return Fault{Mode: Status503} }})
		c := &http.Client{Transport: &http.Transport{}}
		before := hits.Load()
		for range 3 {
			if status, _, err := get(c, p, 0, 10); err != nil || status != http.StatusServiceUnavailable {
				t.Errorf("status %d, %v; want 503", status, err)
			}
		}
		if n := hits.Load() - before; n != 0 {
			t.Errorf("%d requests reached the upstream", n)
		}
		if cnt := p.Counts(); cnt.Conns != 1 || cnt.Requests != 3 || cnt.Status503 != 1 {
			t.Errorf("counts %v, want one connection answered 503 (counted once), 3 requests", cnt)
		}
	})
	t.Run("drip", func(t *testing.T) {
		f := Fault{Mode: Drip, After: 500, N: 4, For: 20 * time.Millisecond}
		p := start(t, Options{Upstream: addr, ConnPolicy: func(int, *rand.Rand) Fault { return f }})
		c := &http.Client{Transport: &http.Transport{}}
		began := time.Now()
		if _, got, err := get(c, p, 0, 4<<10); err != nil || !bytes.Equal(got, body[:4<<10]) {
			t.Errorf("%d bytes, %v", len(got), err)
		}
		if took, d := time.Since(began), time.Duration(f.N)*f.For; took < d {
			t.Errorf("took %v, want at least %v", took, d)
		}
	})
	t.Run("flip", func(t *testing.T) {
		p := start(t, Options{Upstream: addr, ConnPolicy: func(int, *rand.Rand) Fault { return Fault{Mode: Flip, After: 20000} }})
		c := &http.Client{Transport: &http.Transport{}}
		_, got, err := get(c, p, 0, 64<<10)
		if err != nil || len(got) != 64<<10 {
			t.Fatalf("%d bytes, %v", len(got), err)
		}
		if n := countDiff(got, body); n != 1 {
			t.Errorf("%d bytes differ, want 1", n)
		}
	})
}

func countDiff(a, b []byte) int {
	n := 0
	for i := range a {
		if a[i] != b[i] {
			n++
		}
	}
	return n
}

// TestMixDeterministic: the same seed and requests give the same faults,
// another seed others; flips never land twice in one range.
func TestMixDeterministic(t *testing.T) {
	_, addr, _ := origin(t)
	run := func(seed uint64) []Event {
		w := Weights{Reset: 0.1, Stall: 0.05, Truncate: 0.1, Flip: 0.2, Status503: 0.1}
		p := start(t, Options{Upstream: addr, Seed: seed, Policy: Mix(Ranged("/object"), w, time.Millisecond)})
		c := &http.Client{Transport: &http.Transport{}}
		for i := range 60 {
			get(c, p, int64(i%4)*4096, 4096)
		}
		p.Close()
		ev := p.Events()
		var flips []int64
		for _, e := range ev {
			if e.Fault.Mode != Flip {
				continue
			}
			for _, x := range flips {
				if x >= e.RangeStart && x <= e.RangeEnd {
					t.Errorf("seed %d: flip in [%d, %d] where %d was flipped before", seed, e.RangeStart, e.RangeEnd, x)
				}
			}
			flips = append(flips, e.RangeStart+e.Fault.After)
		}
		return ev
	}
	a, b, c := run(7), run(7), run(8)
	if len(a) == 0 {
		t.Fatal("no faults in 60 requests")
	}
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("seed 7 twice gave different faults:\n%v\n%v", a, b)
	}
	if fmt.Sprint(a) == fmt.Sprint(c) {
		t.Errorf("seeds 7 and 8 gave the same faults: %v", a)
	}
}

func TestParseRange(t *testing.T) {
	for _, tc := range []struct {
		h          string
		start, end int64
	}{
		{"bytes=0-99", 0, 99}, {"bytes=5-", 5, -1}, {"", -1, -1}, {"bytes=9-3", -1, -1},
		{"bytes=-5", -1, -1}, {"bytes=0-1,4-5", -1, -1}, {"items=0-1", -1, -1},
	} {
		if s, e := parseRange(tc.h); s != tc.start || e != tc.end {
			t.Errorf("parseRange(%q) = %d, %d, want %d, %d", tc.h, s, e, tc.start, tc.end)
		}
	}
}

func FuzzNXDomain(f *testing.F) {
	f.Add([]byte("\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05store\x07invalid\x00\x00\x01\x00\x01"))
	f.Fuzz(func(t *testing.T, q []byte) {
		r, err := nxdomain(q)
		if err != nil {
			return
		}
		if len(r) < 12 || len(r) > len(q) || r[0] != q[0] || r[1] != q[1] || r[3]&0x0f != 3 || r[2]&0x80 == 0 {
			t.Errorf("nxdomain(%x) = %x", q, r)
		}
	})
}

func FuzzParseRange(f *testing.F) {
	f.Add("bytes=0-99")
	f.Add("bytes=5-")
	f.Fuzz(func(t *testing.T, h string) {
		s, e := parseRange(h)
		if (s < 0) != (s == -1) || (s < 0 && e != -1) || (e >= 0 && e < s) {
			t.Errorf("parseRange(%q) = %d, %d", h, s, e)
		}
	})
}
