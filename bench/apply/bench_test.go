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

// TestKernelCPU reads the kernel threads' CPU time twice: it never goes
// back.
func TestKernelCPU(t *testing.T) {
	a, err := kernelCPU()
	if err != nil {
		t.Fatal(err)
	}
	b, err := kernelCPU()
	if err != nil {
		t.Fatal(err)
	}
	if a < 0 || b < a {
		t.Errorf("kernelCPU() = %s then %s", a, b)
	}
}

// TestWriteTable prints a report of two sizes and checks the lines the
// issue asks for.
func TestWriteTable(t *testing.T) {
	m := func(name string, wall float64) Measure {
		return Measure{Name: name, WallMed: wall, CPUMed: wall / 2, KernelMed: 0.1, ApplyOver: 1}
	}
	size := func(mib int64, ratio float64, rss int64) SizeReport {
		return SizeReport{Image: ImageReport{MiB: mib, SlotBytes: mib << 20, ObjectBytes: mib << 20, Chunks: 10},
			Apply:   m("updater apply", 1),
			Stages:  []Measure{m("GET", 0.5), m("zstd", 0.2), m("SHA-256", 0.4), m("dd", 0.3)},
			Limit:   LimitReport{Cores: 2, LimitS: 1 / ratio, ApplyS: 1, Ratio: ratio},
			PeakRSS: rss}
	}
	rep := Report{Runs: 3, Cores: 2, PeersMiB: 512, Sizes: []SizeReport{size(512, 1.05, 27<<20), size(2048, 1.08, 28<<20)},
		RAUC: m("rauc", 3), RAUCHTTP: m("rauc http", 4), Pipeline: m("pipeline", 6),
		FirstApply: FirstApply{Kept: m("kept", 1), Scanned: m("scanned", 1.5), RunningBytes: 512 << 20}}
	var out strings.Builder
	if err := writeTable(&out, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"apply / limit: 1.05 at 512 MiB, 1.08 at 2048 MiB (target <= 1.1).",
		"27.0 MiB at 512 MiB, 28.0 MiB at 2048 MiB (target < 32 MiB, flat).",
		"first apply after install (512 MiB)",
		"rauc install of the same 512 MiB image: 3.00 s from a local bundle, 4.00 s over http",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
