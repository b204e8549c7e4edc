package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestProxyCounts sends one HTTP request through the counting proxy and
// checks both directions against what the server saw and sent.
func TestProxyCounts(t *testing.T) {
	body := strings.Repeat("x", 1000)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })}
	go srv.Serve(ln)
	defer srv.Close()
	p, err := startProxy(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + p.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != body {
		t.Fatalf("body through the proxy = %d bytes, want %d", len(got), len(body))
	}
	up, down, conns := p.Reset()
	if conns != 1 || up < 40 || down < int64(len(body)) || down > int64(len(body))+300 {
		t.Errorf("proxy counted up %d, down %d, %d connections; want a request, a %d-byte body and headers, 1 connection", up, down, conns, len(body))
	}
	if up, down, conns := p.Reset(); up+down+int64(conns) != 0 {
		t.Errorf("after Reset: %d, %d, %d; want zeros", up, down, conns)
	}
}

// TestProcCPU reads this process's CPU time after burning some.
func TestProcCPU(t *testing.T) {
	before, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// On a busy machine the loop gets less than its wall time: it only
	// has to show up, and not exceed what the process had.
	start := time.Now()
	for time.Since(start) < 300*time.Millisecond {
	}
	wall := time.Since(start)
	after, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if d := after - before; d < 10*time.Millisecond || d > 2*wall+20*time.Millisecond {
		t.Errorf("CPU time over a %s busy loop = %s", wall, d)
	}
}

// TestRandomRoot checks the generated root's size and that updater build
// will find its kernel and initrd.
func TestRandomRoot(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "root")
	if err := randomRoot(dir, 20<<20, 3); err != nil {
		t.Fatal(err)
	}
	var total int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			total += fi.Size()
		}
		return err
	})
	if total != 20<<20 {
		t.Errorf("root holds %d bytes, want %d", total, 20<<20)
	}
	for _, f := range []string{"boot/vmlinuz", "boot/initrd.img"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
}
