package report

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twinroot/twinroot/internal/s3test"
	"github.com/twinroot/twinroot/internal/source"
)

// TestDeviceID pins the device id of a machine id (never to change: the
// fleet report counts devices by it) and keeps a random one for a device
// without a machine id.
func TestDeviceID(t *testing.T) {
	dir := t.TempDir()
	mid := filepath.Join(dir, "machine-id")
	os.WriteFile(mid, []byte("0123456789ABCDEF0123456789abcdef\n"), 0o444)
	if id, err := DeviceID(mid, dir); err != nil || id != "36b41a3abd93ba75d09944279bbb8fa9" {
		t.Errorf("DeviceID(machine id) = %q, %v", id, err)
	}
	state := filepath.Join(dir, "state")
	first, err := DeviceID(filepath.Join(dir, "none"), state)
	if err != nil || len(first) != 32 {
		t.Fatalf("DeviceID without a machine id = %q, %v", first, err)
	}
	if again, err := DeviceID(filepath.Join(dir, "none"), state); err != nil || again != first {
		t.Errorf("a second DeviceID = %q, %v; want the kept %q", again, err, first)
	}
}

// TestReporter writes reports to MinIO, with keys that may put objects:
// the object is the event, at its key, written over by the next. With bad
// credentials, or a store that never answers, Send returns within its
// timeout and only logs.
func TestReporter(t *testing.T) {
	srv := s3test.Start(t, "minio")
	ctx := context.Background()
	opts := source.Options{Endpoint: srv.Endpoint, Region: srv.Region, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}
	st, err := source.OpenStore(ctx, srv.URL("fleet"), opts)
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	at := time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)
	r := &Reporter{Store: st, Device: "36b41a3abd93ba75d09944279bbb8fa9", Channel: "stable", Bucket: 0.25,
		Log: slog.New(slog.NewTextHandler(&log, nil)), Now: func() time.Time { return at }}
	r.Send(ctx, Applied, "2.0.0", 2, "1.0.0", "")
	r.Send(ctx, RolledBack, "2.0.0", 2, "1.0.0", "health gate: web not healthy within 2m0s")
	body, _, err := st.Get(ctx, "reports/stable/2.0.0/36b41a3abd93ba75d09944279bbb8fa9.json", "")
	if err != nil {
		t.Fatalf("the report object: %v (log: %s)", err, log.String())
	}
	var ev Event
	if err := json.NewDecoder(body).Decode(&ev); err != nil {
		t.Fatal(err)
	}
	body.Close()
	want := Event{Format: 1, Device: r.Device, Channel: "stable", Version: "2.0.0", Serial: 2, Event: RolledBack,
		Reason: "health gate: web not healthy within 2m0s", Time: at, Running: "1.0.0", Bucket: 0.25}
	if ev != want {
		t.Errorf("report %+v, want %+v", ev, want)
	}

	// Bad credentials: logged, nothing written, no error to the caller.
	bad := opts
	bad.SecretKey = "wrong"
	badStore, err := source.OpenStore(ctx, srv.URL("fleet"), bad)
	if err != nil {
		t.Fatal(err)
	}
	log.Reset()
	r.Store = badStore
	r.Send(ctx, Committed, "3.0.0", 3, "2.0.0", "")
	if !strings.Contains(log.String(), "report not written; the update goes on") {
		t.Errorf("a report with bad credentials logged %q", log.String())
	}
	if _, _, err := st.Get(ctx, "reports/stable/3.0.0/36b41a3abd93ba75d09944279bbb8fa9.json", ""); err == nil {
		t.Error("a report with bad credentials was written")
	}

	// A store that accepts connections and never answers: Send gives up
	// at its timeout.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	mute := opts
	mute.Endpoint = "http://" + ln.Addr().String()
	if r.Store, err = source.OpenStore(ctx, srv.URL("fleet"), mute); err != nil {
		t.Fatal(err)
	}
	r.Timeout = 300 * time.Millisecond
	log.Reset()
	start := time.Now()
	r.Send(ctx, Committed, "3.0.0", 3, "2.0.0", "")
	if took := time.Since(start); took > 5*time.Second || !strings.Contains(log.String(), "report not written") {
		t.Errorf("a report to a store that never answers took %v and logged %q", took, log.String())
	}
	var none *Reporter
	none.Send(ctx, Applied, "2.0.0", 2, "1.0.0", "") // no reporter: nothing, no panic
}
