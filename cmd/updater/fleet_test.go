package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twinroot/twinroot/internal/cli"
	"github.com/twinroot/twinroot/internal/fleet"
	"github.com/twinroot/twinroot/internal/keys"
)

// TestFleetReportAndWatch: a device applies 1.1.0 and rolls back from its
// trial; fleet report shows it in each format, and rollout watch pauses
// the release, once its rule has enough outcomes to judge.
func TestFleetReportAndWatch(t *testing.T) {
	disk, cfg, k, _ := offlineDeviceKey(t)
	store := strings.TrimPrefix(strings.SplitN(readFile(t, cfg), "\n", 2)[0], "source: ")
	reports := "file://" + t.TempDir()
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("report: {to: " + reports + "}\n")
	f.Close()
	priv, _, err := keys.Save(filepath.Join(t.TempDir(), "ops"), k)
	if err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(t.TempDir(), "state")
	if out, code := run(t, "apply", "--disk", disk, "--running-slot", "a", "--config", cfg, "--state-dir", stateDir); code != 0 {
		t.Fatalf("apply: exit %d: %s", code, out)
	}
	report := []string{"fleet", "report", store, "--channel", "stable", "--reports", reports}
	if out, code := run(t, report...); code != 0 || !strings.Contains(out, "channel stable: 1 devices reported") ||
		!strings.Contains(out, "1.1.0 (serial 2): 1 tried, 0 committed, 1 in trial, 0 failed, 0 rolled back (0 silent)") {
		t.Errorf("fleet report after an apply: exit %d: %s", code, out)
	}
	boot := []string{"boot", "--disk", disk, "--running-slot", "b", "--config", cfg, "--state-dir", stateDir, "--health-timeout", "100ms", "--health-cmd", "false"}
	if out, code := run(t, boot...); code != cli.ExitUnhealthy {
		t.Fatalf("trial boot with a failing gate: exit %d: %s", code, out)
	}
	out, code := run(t, append(report, "-o", "json")...)
	var s fleet.Summary
	if err := json.Unmarshal([]byte(out), &s); code != 0 || err != nil {
		t.Fatalf("fleet report -o json: exit %d, %v: %s", code, err, out)
	}
	r, _ := s.Release("1.1.0")
	if s.Devices != 1 || s.Latest == nil || s.Latest.Version != "1.1.0" || r.RolledBack != 1 || r.Failure != 1 || len(r.Reasons) != 1 ||
		!strings.HasPrefix(r.Reasons[0].Reason, "health check: ") || len(s.Running) != 1 || s.Running[0].Version != "1.0.0" {
		t.Errorf("fleet report -o json after a rollback: %s", out)
	}
	if out, code := run(t, append(report, "-o", "html")...); code != 0 || !strings.HasPrefix(out, "<!DOCTYPE html>") || !strings.Contains(out, `data-release="1.1.0"`) {
		t.Errorf("fleet report -o html: exit %d: %.300s", code, out)
	}
	if out, code := run(t, append(report, "-o", "xml")...); code != cli.ExitUsage || !strings.Contains(out, "want text, html or json") {
		t.Errorf("fleet report -o xml: exit %d: %s", code, out)
	}

	watch := []string{"rollout", "watch", store, "--channel", "stable", "--reports", reports, "--key", priv, "--max-failure", "5%"}
	if out, code := run(t, watch...); code != 0 || !strings.Contains(out, "1 of 1 devices that tried 1.1.0 reached an outcome, fewer than 20: too few to judge") {
		t.Errorf("watch with too few outcomes: exit %d: %s", code, out)
	}
	if out, code := run(t, "rollout", "status", store, "--channel", "stable"); code != 0 || strings.Contains(out, "paused") {
		t.Errorf("status after a watch that could not judge: exit %d: %s", code, out)
	}
	if out, code := run(t, append(watch, "--min-outcomes", "1")...); code != 0 || !strings.Contains(out, "1.1.0: 1 of 1 devices failed 1.1.0 (100.0 %), above 5.0 %: rollout paused") {
		t.Errorf("watch: exit %d: %s", code, out)
	}
	if out, code := run(t, "rollout", "status", store, "--channel", "stable"); code != 0 || !strings.Contains(out, "rollout: paused at ") {
		t.Errorf("status after the watch: exit %d: %s", code, out)
	}
	if out, code := run(t, append(watch, "--max-failure", "five")...); code != cli.ExitUsage {
		t.Errorf("watch --max-failure five: exit %d: %s", code, out)
	}
}
