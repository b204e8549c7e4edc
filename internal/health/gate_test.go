package health

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestGatePasses(t *testing.T) {
	res, err := Gate{Commands: []string{"true", "sh -c 'exit 0'"}, Deadline: 5 * time.Second}.Run(context.Background())
	if err != nil || len(res) != 2 || !res[0].OK || !res[1].OK {
		t.Fatalf("Run = %+v, %v", res, err)
	}
}

func TestGateFailsAtDeadline(t *testing.T) {
	start := time.Now()
	_, err := Gate{Commands: []string{"true", "sh -c 'echo db down; exit 3'"}, Deadline: 300 * time.Millisecond, Interval: 50 * time.Millisecond}.Run(context.Background())
	if !errors.Is(err, ErrUnhealthy) || !strings.Contains(err.Error(), "db down") {
		t.Fatalf("Run = %v, want ErrUnhealthy naming the failure", err)
	}
	if time.Since(start) < 300*time.Millisecond {
		t.Error("gave up before the deadline")
	}
}

// A check that starts passing before the deadline lets the gate pass.
func TestGateRetries(t *testing.T) {
	flag := filepath.Join(t.TempDir(), "up")
	go func() { time.Sleep(200 * time.Millisecond); os.WriteFile(flag, nil, 0o644) }()
	_, err := Gate{Commands: []string{"test -e " + flag}, Deadline: 5 * time.Second, Interval: 50 * time.Millisecond}.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
}

func TestGateUnits(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "systemctl")
	os.WriteFile(fake, []byte("#!/bin/sh\nif [ \"$2\" = web.service ]; then echo active; exit 0; fi\necho failed; exit 3\n"), 0o755)
	g := Gate{Units: []string{"web.service"}, Systemctl: fake, Deadline: time.Second}
	if _, err := g.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	g.Units = append(g.Units, "db.service")
	g.Deadline = 100 * time.Millisecond
	if _, err := g.Run(context.Background()); !errors.Is(err, ErrUnhealthy) || !strings.Contains(err.Error(), "unit db.service: failed") {
		t.Fatalf("Run = %v", err)
	}
}
