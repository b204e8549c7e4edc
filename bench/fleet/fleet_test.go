package main

import (
	"bytes"
	"context"
	"regexp"
	"testing"
	"time"
)

// TestFleet runs the bench on 200 devices and one MinIO: every no-change
// check is one conditional GET the store answers 304, the rollout's
// quarters are near its share (200 devices draw buckets far less evenly
// than 10,000: 15 points of tolerance, not 2), and the watch pauses the
// failing release before half the fleet tried it.
func TestFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("runs MinIO and 200 devices")
	}
	o := options{Devices: 200, Interval: 4*time.Minute + 30*time.Second, Jitter: time.Minute, Rollout: time.Hour,
		FailShare: 0.10, MaxFailure: 0.05, MinOutcomes: 20, Tolerance: 0.15, Workers: 16, Seed: 7,
		Stores: []storeSetup{{Name: "minio, 1 process", Nodes: 1}}}
	o.Work = t.TempDir()
	var log bytes.Buffer
	rep, err := run(context.Background(), o, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	r := rep.Runs[0]
	// 200 devices each fetched latest.json whole four times: 1.0.0, 2.0.0,
	// 3.0.0 and 3.0.0 paused; every other check was a 304.
	if r.Store200 != 4*200 || r.Store304 < 10*200 || r.Requests < r.Checks {
		t.Errorf("store: %d answered 200, %d answered 304, %d requests for %d checks; want 800 whole, most 304", r.Store200, r.Store304, r.Requests, r.Checks)
	}
	if !r.Failing.Paused || r.Failing.FailedAtPause == 0 {
		t.Errorf("failing release: %+v", r.Failing)
	}
	var table bytes.Buffer
	writeTable(&table, rep)
	if !regexp.MustCompile(`every no-change check one conditional GET answered 304 +yes`).MatchString(table.String()) {
		t.Errorf("table:\n%s", table.String())
	}
}
