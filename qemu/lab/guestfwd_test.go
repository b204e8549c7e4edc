package lab

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestForwarder plays QEMU: one stream, several requests on it in turn,
// against a server that closes its connection after every response.
func TestForwarder(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Host", r.Host)
		fmt.Fprintf(w, "%s %s %q", r.Method, r.URL.Path, body)
	}))
	srv.Config.SetKeepAlivesEnabled(false)
	srv.Start()
	defer srv.Close()

	f, err := Forward(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, want := f.GuestFwd("10.0.2.100:9000"), fmt.Sprintf("guestfwd=tcp:10.0.2.100:9000-tcp:127.0.0.1:%d", f.Port()); got != want {
		t.Errorf("GuestFwd = %q, want %q", got, want)
	}
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", f.Port()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i, tc := range []struct{ method, body, want string }{
		{"PUT", "chunk bytes", `PUT /bucket/key "chunk bytes"`},
		{"GET", "", `GET /bucket/key ""`},
		{"HEAD", "", ``},
		{"GET", "", `GET /bucket/key ""`},
	} {
		req, _ := http.NewRequest(tc.method, "http://10.0.2.100:9000/bucket/key", strings.NewReader(tc.body))
		if tc.body == "" {
			req.Body = nil
		}
		if err := req.Write(c); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			t.Fatalf("request %d (%s): %v", i, tc.method, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != tc.want {
			t.Errorf("request %d (%s) = %d %q, want 200 %q", i, tc.method, resp.StatusCode, b, tc.want)
		}
		if got, want := resp.Header.Get("X-Host"), "10.0.2.100:9000"; got != want {
			t.Errorf("request %d: the server saw Host %q, want the guest's %q", i, got, want)
		}
	}
	if _, err := Forward("http://192.0.2.1:9000"); err == nil {
		t.Error("Forward to an address other than 127.0.0.1 = nil error, want a refusal")
	}
}
