package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twinroot/twinroot/internal/agent"
	"github.com/twinroot/twinroot/internal/cli"
	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/manifest"
	"github.com/twinroot/twinroot/internal/testrelease"
)

// TestPublishStaged publishes a release with --rollout and --start, and an
// offline disk (no machine id of its own: it goes last) waits for it until
// apply --now.
func TestPublishStaged(t *testing.T) {
	disk, cfg, k, pub := offlineDeviceKey(t)
	store := strings.TrimPrefix(strings.SplitN(readFile(t, cfg), "\n", 2)[0], "source: ")
	priv, _, err := keys.Save(filepath.Join(t.TempDir(), "ci"), k)
	if err != nil {
		t.Fatal(err)
	}
	dir := testrelease.Small(t, pub, "2.0.0", 3, 512<<10, "")
	for _, bad := range [][]string{{"--start", "5%"}, {"--rollout", "24h", "--start", "150%"}, {"--rollout", "-1h"}} {
		args := append([]string{"publish", "--image", dir, "--channel", "stable", "--key", priv, "--to", store}, bad...)
		if out, code := run(t, args...); code != cli.ExitUsage {
			t.Errorf("publish %v: exit %d, want %d: %s", bad, code, cli.ExitUsage, out)
		}
	}
	out, code := run(t, "publish", "--image", dir, "--channel", "stable", "--key", priv, "--to", store, "--rollout", "24h", "--start", "5%")
	if code != 0 || !strings.Contains(out, "rollout: from ") || !strings.Contains(out, "(5 % of devices at once)") {
		t.Fatalf("publish --rollout: exit %d: %s", code, out)
	}
	latest := readFile(t, filepath.Join(strings.TrimPrefix(store, "file://"), "stable", manifest.Latest))
	env, err := manifest.ParseEnvelope([]byte(latest))
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Decode(env.Manifest)
	if err != nil || m.Rollout == nil || m.Rollout.StartPercent != 5 || m.Rollout.Duration != manifest.Duration(24*60*60*1e9) {
		t.Fatalf("published rollout %+v, %v", m.Rollout, err)
	}

	stateDir := filepath.Join(t.TempDir(), "state")
	args := []string{"apply", "-o", "json", "--disk", disk, "--running-slot", "a", "--config", cfg, "--state-dir", stateDir}
	out, code = run(t, args...)
	var res agent.RoundResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if code != 0 || res.Apply != nil || res.Check.Outcome != agent.CheckWaiting || res.Check.Rollout == nil || res.Check.Rollout.Bucket != 1 ||
		!strings.Contains(res.Check.Reason, "its turn comes at "+m.Rollout.Start.Add(24*60*60*1e9).Format("2006-01-02T15:04:05Z")) {
		t.Fatalf("apply of a staged release on a device that goes last: exit %d: %s", code, out)
	}
	if out, code := run(t, "check", "--disk", disk, "--running-slot", "a", "--config", cfg, "--state-dir", stateDir); code != 0 || !strings.HasPrefix(out, "waiting: 2.0.0's rollout has reached ") {
		t.Errorf("check of a staged release on a device that goes last: exit %d: %s", code, out)
	}
	// Paused: the device waits for that reason; pausing twice is refused,
	// and status and resume say where the rollout stands.
	if out, code := run(t, "rollout", "pause", store, "--channel", "stable", "--key", priv); code != 0 || !strings.Contains(out, "rollout: paused at ") {
		t.Fatalf("rollout pause: exit %d: %s", code, out)
	}
	if out, code := run(t, "rollout", "pause", store, "--channel", "stable", "--key", priv); code != cli.ExitRefused || !strings.Contains(out, "already paused") {
		t.Errorf("a second rollout pause: exit %d, want %d: %s", code, cli.ExitRefused, out)
	}
	if out, code := run(t, "rollout", "status", store, "--channel", "stable", "--pub", pub); code != 0 || !strings.Contains(out, "rollout: paused at ") || !strings.Contains(out, "stable 2.0.0 (serial 3)") {
		t.Errorf("rollout status: exit %d: %s", code, out)
	}
	out, code = run(t, args...)
	if code != 0 || !strings.Contains(out, `"outcome": "waiting"`) || !strings.Contains(out, "rollout is paused at") {
		t.Errorf("apply of a paused release: exit %d: %s", code, out)
	}
	if out, code := run(t, "rollout", "resume", store, "--channel", "stable", "--key", priv); code != 0 || !strings.Contains(out, "% of devices now; started ") {
		t.Errorf("rollout resume: exit %d: %s", code, out)
	}
	if out, code := run(t, append(args, "--now")...); code != 0 || !strings.Contains(out, `"version": "2.0.0"`) {
		t.Fatalf("apply --now: exit %d: %s", code, out)
	}
}
