package agent

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twinroot/twinroot/image"
	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/release"
	"github.com/twinroot/twinroot/internal/source"
	"github.com/twinroot/twinroot/internal/state"
	"github.com/twinroot/twinroot/internal/testrelease"
)

// publish builds a tiny release and publishes it to a file:// store.
func publish(t *testing.T, storeDir string, k *keys.PrivateKey, version string, serial uint64) {
	t.Helper()
	_, pub, err := keys.Save(filepath.Join(t.TempDir(), "k"), k)
	if err != nil {
		t.Fatal(err)
	}
	dir := testrelease.Small(t, pub, version, serial, 256<<10, "")
	st, err := source.OpenStore(context.Background(), "file://"+storeDir, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := release.Publish(context.Background(), st, release.PublishOptions{Dir: dir, Channel: "stable", Signers: []*keys.PrivateKey{k}, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
}

func TestCheck(t *testing.T) {
	k, _ := keys.Generate(nil)
	ring, _ := keys.NewRing(k.Public())
	storeDir := t.TempDir()
	publish(t, storeDir, k, "1.1.0", 11)
	src, err := source.Open(context.Background(), "file://"+storeDir, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(t.TempDir(), "state")
	c := Checker{Source: src, Channel: "stable", Running: image.Slot{Info: image.Info{Version: "1.0.0"}, Serial: 10, Trusted: ring}, SlotSize: 64 << 20, State: state.Store{Dir: stateDir}}
	r, err := c.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.Outcome != CheckAvailable || r.Manifest.Version != "1.1.0" || r.NotModified {
		t.Fatalf("first check = %+v", r)
	}
	// Unchanged channel: a conditional GET without a body, same answer.
	r, err = c.Check(context.Background())
	if err != nil || r.Outcome != CheckAvailable || !r.NotModified {
		t.Fatalf("second check = %+v, %v; want available and not modified", r, err)
	}
	st, _ := c.State.Load()
	if st.HighestSerial != 11 || st.LastCheck == nil || st.LastCheck.Outcome != CheckAvailable {
		t.Errorf("state = %+v", st)
	}
	c.Running = image.Slot{Info: image.Info{Version: "1.1.0"}, Serial: 11, Trusted: ring}
	if r, err := c.Check(context.Background()); err != nil || r.Outcome != CheckUpToDate {
		t.Errorf("check from 1.1.0 = %+v, %v; want up-to-date", r, err)
	}
	// A version that failed here is refused, and reported once.
	c.Running = image.Slot{Info: image.Info{Version: "1.0.0"}, Serial: 10, Trusted: ring}
	c.State.Update(func(s *state.State) { s.MarkBad("1.1.0") })
	r, err = c.Check(context.Background())
	if err != nil || r.Outcome != CheckRefused || !strings.Contains(r.Reason, "failed its trial boot") || !r.FirstReport {
		t.Errorf("check of a bad version = %+v, %v", r, err)
	}
	if r, _ = c.Check(context.Background()); r.FirstReport {
		t.Error("the same refusal was reported twice")
	}
	// A newer version is taken again.
	publish(t, storeDir, k, "1.2.0", 12)
	if r, err := c.Check(context.Background()); err != nil || r.Outcome != CheckAvailable || r.Manifest.Version != "1.2.0" {
		t.Errorf("check after 1.2.0 = %+v, %v", r, err)
	}
	// A device that trusts another key refuses the channel.
	other, _ := keys.Generate(nil)
	c.Running.Trusted, _ = keys.NewRing(other.Public())
	if r, err := c.Check(context.Background()); err != nil || r.Outcome != CheckRefused || !strings.Contains(r.Reason, "trusted") {
		t.Errorf("check with another key = %+v, %v", r, err)
	}
}
