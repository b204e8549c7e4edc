package source_test

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twinroot/twinroot/internal/faultproxy"
	"github.com/twinroot/twinroot/internal/s3test"
	"github.com/twinroot/twinroot/internal/source"
)

// TestS3Faults puts the fault proxy between an S3 source and each server
// and checks how the source names what went wrong: the sentinels callers
// decide on (retry or give up) and one line a person can act on.
func TestS3Faults(t *testing.T) {
	for _, kind := range s3test.Kinds {
		t.Run(kind, func(t *testing.T) {
			srv := s3test.Start(t, kind)
			ctx := t.Context()
			opts := source.Options{Endpoint: srv.Endpoint, Region: srv.Region, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}
			st, err := source.OpenStore(ctx, srv.URL("releases"), opts)
			if err != nil {
				t.Fatal(err)
			}
			data := randomBytes(7, 64<<10)
			if err := st.PutIfAbsent(ctx, "k", bytes.NewReader(data), int64(len(data))); err != nil {
				t.Fatal(err)
			}
			proxy, err := faultproxy.Start(faultproxy.Options{Upstream: strings.TrimPrefix(srv.Endpoint, "http://")})
			if err != nil {
				t.Fatal(err)
			}
			defer proxy.Close()
			o := opts
			o.Endpoint, o.MaxAttempts = proxy.URL(), 1
			src, err := source.Open(ctx, srv.URL("releases"), o)
			if err != nil {
				t.Fatal(err)
			}
			always := func(f faultproxy.Fault) { proxy.SetPolicy(faultproxy.Always(nil, f)) }

			always(faultproxy.Fault{Mode: faultproxy.Status403})
			_, _, err = src.Get(ctx, "k", "")
			if !errors.Is(err, source.ErrDenied) || !strings.Contains(err.Error(), "access denied (403 AccessDenied") || strings.Contains(err.Error(), "\n") {
				t.Errorf("Get answered 403 = %v, want one line wrapping ErrDenied", err)
			}
			always(faultproxy.Fault{Mode: faultproxy.Status404})
			if _, err := src.GetRange(ctx, "k", 0, 10); !errors.Is(err, source.ErrNotFound) {
				t.Errorf("GetRange answered 404 = %v, want ErrNotFound", err)
			}

			// A length that is not the range's is broken on its way, not
			// a range past the end: the caller may try again.
			for _, n := range []int64{10, -10} {
				always(faultproxy.Fault{Mode: faultproxy.Length, N: n})
				_, err := src.GetRange(ctx, "k", 100, 1000)
				if err == nil || errors.Is(err, source.ErrRange) || !strings.Contains(err.Error(), "server sent a length of") {
					t.Errorf("GetRange with a Content-Length %+d off = %v, want an error that is not ErrRange", n, err)
				}
			}
			proxy.SetPolicy(nil)
			if _, err := src.GetRange(ctx, "k", int64(len(data))-10, 20); !errors.Is(err, source.ErrRange) {
				t.Errorf("GetRange past the end = %v, want ErrRange", err)
			}

			// MaxAttempts 1 leaves the SDK no retry of its own (its
			// default of 3 waits up to 2 s, then 4 s, between them).
			always(faultproxy.Fault{Mode: faultproxy.Status503})
			before := proxy.Counts().Requests
			_, err = src.GetRange(ctx, "k", 0, 10)
			if err == nil || !strings.HasSuffix(err.Error(), ": server answered 503 SlowDown: Please reduce your request rate.") {
				t.Errorf("GetRange answered 503 = %v, want the server's words", err)
			}
			if got := proxy.Counts().Requests - before; got != 1 {
				t.Errorf("MaxAttempts 1: %d requests for one answered 503, want 1", got)
			}
		})
	}
}

// TestNoHost: a store whose host name does not resolve is named so, in
// one line, for S3 and https alike. The names are looked up through a
// DNS server on 127.0.0.1 that answers NXDOMAIN, so no query leaves the
// machine.
func TestNoHost(t *testing.T) {
	dns, err := faultproxy.StartDNS()
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	dialer := &net.Dialer{Resolver: dns.Resolver(), Timeout: 5 * time.Second}
	client := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	opts := source.Options{Endpoint: "http://store.twinroot.invalid:9000", AccessKey: "k", SecretKey: "s", HTTPClient: client, MaxAttempts: 1}
	for _, u := range []string{"s3://releases/fleet", "https://store.twinroot.invalid/fleet"} {
		src, err := source.Open(t.Context(), u, opts)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = src.Get(t.Context(), "stable/latest.json", "")
		if !errors.Is(err, source.ErrNoHost) || !strings.Contains(err.Error(), "store.twinroot.invalid") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: Get = %v, want one line wrapping ErrNoHost that names the host", u, err)
		}
	}
	if dns.Queries() == 0 {
		t.Error("no query reached the DNS server")
	}
}
