package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twinroot/twinroot/internal/agent"
	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/cli"
	"github.com/twinroot/twinroot/internal/config"
	"github.com/twinroot/twinroot/internal/grub"
	"github.com/twinroot/twinroot/internal/install"
	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/release"
	"github.com/twinroot/twinroot/internal/source"
	"github.com/twinroot/twinroot/internal/state"
	"github.com/twinroot/twinroot/internal/testenv"
	"github.com/twinroot/twinroot/internal/testrelease"
)

// TestCheckOffline installs a release built by updater build on a disk
// file, publishes a newer one to a file:// channel, and asks check.
func TestCheckOffline(t *testing.T) {
	disk, cfg := offlineDevice(t)
	storeDir := strings.TrimPrefix(strings.SplitN(readFile(t, cfg), "\n", 2)[0], "source: file://")
	os.WriteFile(cfg, []byte("source: file://"+storeDir+"\nchannel: stable\n"), 0o600)
	args := []string{"check", "-o", "json", "--disk", disk, "--running-slot", "a", "--config", cfg, "--state-dir", filepath.Join(t.TempDir(), "state")}
	out, code := run(t, args...)
	if code != 0 {
		t.Fatalf("check: exit %d: %s", code, out)
	}
	var r agent.CheckResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if r.Outcome != agent.CheckAvailable || r.Running != "1.0.0" || r.Manifest.Version != "1.1.0" {
		t.Errorf("check = %+v", r)
	}
	// A channel nobody published to is an error naming what is missing.
	os.WriteFile(cfg, []byte("source: file://"+storeDir+"\nchannel: beta\n"), 0o600)
	out, code = run(t, args...)
	if code != cli.ExitError || !strings.Contains(out, "beta/latest.json") {
		t.Errorf("check on an empty channel: exit %d: %s", code, out)
	}
	// Text output: the outcome, then why.
	os.WriteFile(cfg, []byte("source: file://"+storeDir+"\nchannel: stable\n"), 0o600)
	if out, code := run(t, "check", "--disk", disk, "--running-slot", "a", "--config", cfg, "--state-dir", filepath.Join(t.TempDir(), "s2")); code != 0 || !strings.HasPrefix(out, "update-available: 1.1.0") {
		t.Errorf("text check: exit %d: %s", code, out)
	}
}

// TestApplyOffline applies the channel's release to a disk file: slot b
// holds it, armed for the config's trial boots.
// offlineDevice installs 1.0.0 on a disk file and publishes 1.1.0 to a
// file:// channel that the returned device.yaml names.
func offlineDevice(t *testing.T) (disk, cfg string) {
	disk, cfg, _, _ = offlineDeviceKey(t)
	return disk, cfg
}

// offlineDeviceKey is offlineDevice, and the release key 1.0.0 trusts.
func offlineDeviceKey(t *testing.T) (disk, cfg string, k *keys.PrivateKey, pub string) {
	ctx := context.Background()
	k, pub = testrelease.Key(t)
	v1 := testrelease.Small(t, pub, "1.0.0", 1, 512<<10, "")
	grubDir := t.TempDir()
	if err := grub.BuildImages(ctx, grubDir); err != nil {
		t.Fatal(err)
	}
	disk = filepath.Join(t.TempDir(), "disk.img")
	f, _ := os.Create(disk)
	f.Truncate(partition.MinDiskSize(32 << 20))
	f.Close()
	if _, err := install.Install(ctx, install.Options{Disk: disk, Image: filepath.Join(v1, release.SlotFile), GrubDir: grubDir, SlotSize: 32 << 20}); err != nil {
		t.Fatal(err)
	}
	storeDir := t.TempDir()
	st, _ := source.OpenStore(ctx, "file://"+storeDir, source.Options{})
	if _, err := release.Publish(ctx, st, release.PublishOptions{Dir: testrelease.Small(t, pub, "1.1.0", 2, 512<<10, ""), Channel: "stable", Signers: []*keys.PrivateKey{k}, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	cfg = filepath.Join(t.TempDir(), "device.yaml")
	os.WriteFile(cfg, []byte("source: file://"+storeDir+"\ntrial_boots: 2\n"), 0o600)
	return disk, cfg, k, pub
}

func TestApplyOffline(t *testing.T) {
	disk, cfg := offlineDevice(t)
	applyState := filepath.Join(t.TempDir(), "state")
	out, code := run(t, "apply", "--disk", disk, "--running-slot", "a", "--config", cfg, "--state-dir", applyState)
	if code != 0 || !strings.Contains(out, "slot b: 1.1.0 (serial 2) written and verified") || !strings.Contains(out, "armed for 2 trial boot(s)") {
		t.Fatalf("apply: exit %d: %s", code, out)
	}
	out, _ = run(t, "status", "-o", "json", "--disk", disk, "--running-slot", "a", "--state-dir", applyState)
	var s status
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if s.Trial != "b" || s.Slots["b"].Version != "1.1.0" || s.Slots["b"].Serial != 2 || s.Slots["a"].Serial != 1 ||
		s.LastCheck == nil || s.LastCheck.Outcome != agent.CheckAvailable || s.HighestSerial != 2 || s.Apply != nil {
		t.Errorf("status after apply:\n%s", out)
	}
	// The trial boot of b passes its gate and commits; the boot after that
	// checks the channel and finds b up to date.
	stateDir := filepath.Join(t.TempDir(), "state2")
	out, code = run(t, "boot", "--disk", disk, "--running-slot", "b", "--config", cfg, "--state-dir", stateDir, "--health-cmd", "true")
	if code != 0 || !strings.Contains(out, "committed: slot b passed") {
		t.Fatalf("trial boot: exit %d: %s", code, out)
	}
	out, code = run(t, "boot", "--disk", disk, "--running-slot", "b", "--config", cfg, "--state-dir", stateDir)
	if code != 0 || !strings.Contains(out, "nothing-to-do") || !strings.Contains(out, "up-to-date") {
		t.Errorf("boot after commit: exit %d: %s", code, out)
	}
}

// TestDaemon runs a daemon round against the channel and stops it.
func TestDaemon(t *testing.T) {
	disk, cfg := offlineDevice(t)
	c := newRootCmd()
	var out bytes.Buffer
	c.SetOut(&out)
	c.SetErr(&out)
	c.SetArgs([]string{"daemon", "--disk", disk, "--running-slot", "a", "--config", cfg, "--state-dir", filepath.Join(t.TempDir(), "state")})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := c.ExecuteContext(ctx); err != nil {
		t.Fatalf("daemon: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "slot b: 1.1.0 (serial 2) written and verified") {
		t.Errorf("daemon round:\n%s", out.String())
	}
	if time.Since(start) < 4*time.Second {
		t.Errorf("daemon returned after %v, before its context ended", time.Since(start))
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestStateOnTheDisk applies to a disk file with neither --config nor
// --state-dir: the config and the state are that disk's own, on its data
// partition, as they would be on the device.
func TestStateOnTheDisk(t *testing.T) {
	testenv.NeedRoot(t)
	disk, cfg := offlineDevice(t)
	d, err := bootstate.OpenDisk(disk)
	if err != nil {
		t.Fatal(err)
	}
	layout := d.Layout
	d.Close()
	withData := func(f func(dir string)) {
		dir, unmount, err := partition.MountData(disk, layout)
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := unmount(); err != nil {
				t.Error(err)
			}
		}()
		f(dir)
	}
	withData(func(dir string) {
		os.MkdirAll(filepath.Join(dir, "twinroot"), 0o755)
		if err := os.WriteFile(filepath.Join(dir, config.DataPath), []byte(readFile(t, cfg)), 0o600); err != nil {
			t.Fatal(err)
		}
	})
	if out, code := run(t, "apply", "--disk", disk, "--running-slot", "a", "--reboot", "next-boot"); code != 0 || !strings.Contains(out, "1.1.0 (serial 2) written and verified") {
		t.Fatalf("apply with the disk's own config: exit %d: %s", code, out)
	}
	withData(func(dir string) {
		for _, f := range []string{state.FileName, state.JournalFile, state.SlotIndexName("b")} {
			if _, err := os.Stat(filepath.Join(dir, "twinroot/state", f)); err != nil {
				t.Errorf("state on the disk's data partition: %v", err)
			}
		}
	})
	if out, code := run(t, "status", "-o", "json", "--disk", disk, "--running-slot", "a"); code != 0 || !strings.Contains(out, `"highest_serial": 2`) {
		t.Errorf("status with the disk's own state: exit %d: %s", code, out)
	}
}

// TestStatusAfterFailedApply: updater status says, for the channel's
// version, why it could not be taken, in one line and in how many rounds:
// failed (exit code 1) while its object is missing, refused (exit code 3)
// once the store holds bytes that differ from the signed ones, and
// nothing once it is armed.
func TestStatusAfterFailedApply(t *testing.T) {
	disk, cfg := offlineDevice(t)
	storeDir := strings.TrimPrefix(strings.SplitN(readFile(t, cfg), "\n", 2)[0], "source: file://")
	object := filepath.Join(storeDir, "stable", "1.1.0", release.ObjectFile)
	good, err := os.ReadFile(object)
	if err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(t.TempDir(), "state")
	dev := []string{"--disk", disk, "--running-slot", "a", "--state-dir", stateDir}
	apply := func() (string, int) {
		return lastLine(run(t, append([]string{"apply", "--config", cfg, "--reboot", "next-boot"}, dev...)...))
	}
	status := func() (status, string) {
		out, code := run(t, append([]string{"status", "-o", "json"}, dev...)...)
		var s status
		if err := json.Unmarshal([]byte(out), &s); code != 0 || err != nil {
			t.Fatalf("status: exit %d, %v\n%s", code, err, out)
		}
		text, _ := run(t, append([]string{"status"}, dev...)...)
		return s, text
	}

	os.Remove(object)
	for round := 1; round <= 2; round++ {
		msg, code := apply()
		if code != cli.ExitError || !strings.Contains(msg, "not found") {
			t.Fatalf("apply without the object: exit %d: %s", code, msg)
		}
		s, text := status()
		f, ok := s.Failures["1.1.0"]
		if !ok || f.Refused || f.Rounds != round || f.Reason != msg || len(s.Failures) != 1 {
			t.Errorf("round %d: failures %+v, want 1.1.0 failed in %d round(s): %s", round, s.Failures, round, msg)
		}
		if line := grepLine(text, "version 1.1.0"); !strings.Contains(line, "failed") || !strings.HasSuffix(line, msg) {
			t.Errorf("round %d: status says %q, want a line for 1.1.0 that ends with %q\n%s", round, line, msg, text)
		}
	}

	bad := bytes.Clone(good)
	bad[len(bad)/2] ^= 0xff
	os.WriteFile(object, bad, 0o644)
	msg, code := apply()
	if code != cli.ExitRefused || !strings.Contains(msg, "bytes differ from what was signed") {
		t.Fatalf("apply of a corrupt object: exit %d: %s", code, msg)
	}
	s, text := status()
	t.Logf("status after three failed rounds:\n%s", text)
	if f := s.Failures["1.1.0"]; !f.Refused || f.Rounds != 3 || f.Reason != msg {
		t.Errorf("failures %+v, want 1.1.0 refused in its third round: %s", s.Failures, msg)
	}
	if line := grepLine(text, "version 1.1.0"); !strings.Contains(line, "refused") || !strings.Contains(line, "3 rounds since") {
		t.Errorf("status says %q, want 1.1.0 refused in 3 rounds\n%s", line, text)
	}

	os.WriteFile(object, good, 0o644)
	if msg, code := apply(); code != 0 {
		t.Fatalf("apply of the good object: exit %d: %s", code, msg)
	}
	if s, text := status(); len(s.Failures) != 0 || grepLine(text, "version 1.1.0") != "" {
		t.Errorf("status after 1.1.0 was armed still shows a failure: %+v\n%s", s.Failures, text)
	}
}

// grepLine returns the first line of text that starts with prefix.
func grepLine(text, prefix string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
