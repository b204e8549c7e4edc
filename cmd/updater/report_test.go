package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twinroot/twinroot/internal/cli"
	"github.com/twinroot/twinroot/internal/report"
	"github.com/twinroot/twinroot/internal/s3test"
	"github.com/twinroot/twinroot/internal/source"
)

// TestApplyReports: with a report section, apply leaves the device's
// report of the release (applied) under reports/<channel>/<version>/, named
// by the device id kept in its state directory (a disk file has no
// machine id of its own); with keys the store refuses, the apply still
// succeeds and only logs.
func TestApplyReports(t *testing.T) {
	srv := s3test.Start(t, "minio")
	for _, tc := range []struct {
		name    string
		section string
		written bool
	}{
		{"file", "report: {to: file://%s}\n", true},
		{"bad keys", "report: {to: " + srv.URL("reports") + ", endpoint: " + srv.Endpoint + ", credentials: {access_key_id: " + srv.AccessKey + ", secret_access_key: wrong}}\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk, cfg := offlineDevice(t)
			reports := t.TempDir()
			section := tc.section
			if strings.Contains(section, "%s") {
				section = strings.Replace(section, "%s", reports, 1)
			}
			f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(section)
			f.Close()
			stateDir := filepath.Join(t.TempDir(), "state")
			out, code := run(t, "apply", "--disk", disk, "--running-slot", "a", "--config", cfg, "--state-dir", stateDir)
			if code != 0 || !strings.Contains(out, "slot b: 1.1.0 (serial 2) written and verified") {
				t.Fatalf("apply with reports: exit %d: %s", code, out)
			}
			id, err := os.ReadFile(filepath.Join(stateDir, report.IDFile))
			if err != nil {
				t.Fatalf("device id: %v", err)
			}
			obj := filepath.Join(reports, "reports", "stable", "1.1.0", strings.TrimSpace(string(id))+".json")
			b, err := os.ReadFile(obj)
			if !tc.written {
				st, err := source.OpenStore(context.Background(), srv.URL("reports"), source.Options{Endpoint: srv.Endpoint, Region: srv.Region, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
				if err != nil {
					t.Fatal(err)
				}
				if objs, err := st.List(context.Background(), "reports/"); err != nil || len(objs) != 0 {
					t.Errorf("reports written with refused keys: %v, %v", objs, err)
				}
				return
			}
			var ev report.Event
			if err != nil || json.Unmarshal(b, &ev) != nil || ev.Event != report.Applied || ev.Running != "1.0.0" || ev.Serial != 2 || ev.Bucket != 1 {
				t.Errorf("report %s: %v: %s", obj, err, b)
			}
			// The trial boot of b fails its gate: rolled back, and why.
			boot := []string{"boot", "--disk", disk, "--running-slot", "b", "--config", cfg, "--state-dir", stateDir, "--health-timeout", "100ms"}
			if out, code := run(t, append(boot, "--health-cmd", "false")...); code != cli.ExitUnhealthy {
				t.Fatalf("trial boot with a failing gate: exit %d: %s", code, out)
			}
			b, err = os.ReadFile(obj)
			ev = report.Event{}
			if err != nil || json.Unmarshal(b, &ev) != nil || ev.Event != report.RolledBack || ev.Version != "1.1.0" || ev.Running != "1.0.0" ||
				!strings.HasPrefix(ev.Reason, "health check: ") {
				t.Errorf("report after a failed trial %s: %v: %s", obj, err, b)
			}
		})
	}
}
