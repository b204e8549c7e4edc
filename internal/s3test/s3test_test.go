package s3test

import (
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestStart starts each server, sees its bucket through the aws CLI, and
// checks that the cleanup really stopped it.
func TestStart(t *testing.T) {
	for _, kind := range Kinds {
		var addr string
		t.Run(kind, func(t *testing.T) {
			srv := Start(t, kind)
			u, err := url.Parse(srv.Endpoint)
			if err != nil {
				t.Fatal(err)
			}
			if host := u.Hostname(); host != "127.0.0.1" {
				t.Errorf("endpoint %s: host %s, want 127.0.0.1", srv.Endpoint, host)
			}
			addr = u.Host
			out := string(srv.AWS(t, "s3api", "list-buckets", "--query", "Buckets[].Name", "--output", "text"))
			if got := strings.Fields(out); len(got) != 1 || got[0] != srv.Bucket {
				t.Errorf("aws s3api list-buckets = %q, want [%s]", got, srv.Bucket)
			}
		})
		if addr == "" {
			continue // skipped or failed before the server ran
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections on %s after the test ended", kind, addr)
		}
	}
}
