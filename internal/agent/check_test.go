package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twinroot/twinroot/image"
	"github.com/twinroot/twinroot/internal/fetch"
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

// flipFirst flips one byte of the first n bodies Get returns, as a
// network that corrupts in flight; it counts the requests.
type flipFirst struct {
	source.Source
	n, requests int
}

func (f *flipFirst) Get(ctx context.Context, key, etag string) (io.ReadCloser, string, error) {
	f.requests++
	rc, tag, err := f.Source.Get(ctx, key, etag)
	if err != nil || f.requests > f.n {
		return rc, tag, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, "", err
	}
	b[len(b)/2] ^= 0x20
	return io.NopCloser(bytes.NewReader(b)), tag, nil
}

// TestCheckFlippedByte: a latest.json with a byte flipped on the wire is
// fetched once more and judged on good bytes; one flipped every time is
// refused, and neither it nor its ETag is kept, so the next check (a
// conditional GET) cannot find it "not modified" and refuse it again.
func TestCheckFlippedByte(t *testing.T) {
	k, _ := keys.Generate(nil)
	ring, _ := keys.NewRing(k.Public())
	storeDir := t.TempDir()
	publish(t, storeDir, k, "1.1.0", 11)
	files, err := source.Open(context.Background(), "file://"+storeDir, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	running := image.Slot{Info: image.Info{Version: "1.0.0"}, Serial: 10, Trusted: ring}
	check := func(src source.Source, dir string) (CheckResult, error) {
		c := Checker{Source: src, Channel: "stable", Running: running, SlotSize: 64 << 20, State: state.Store{Dir: dir},
			Retry: fetch.Backoff(3, 0, 0)}
		return c.Check(context.Background())
	}

	once := &flipFirst{Source: files, n: 1}
	if r, err := check(once, filepath.Join(t.TempDir(), "state")); err != nil || r.Outcome != CheckAvailable || once.requests != 2 {
		t.Errorf("check with one byte flipped = %+v, %v after %d requests; want available after 2", r, err, once.requests)
	}

	dir := filepath.Join(t.TempDir(), "state")
	always := &flipFirst{Source: files, n: 1 << 30}
	r, err := check(always, dir)
	if err != nil || r.Outcome != CheckRefused || !strings.Contains(r.Reason, "(fetched twice)") || always.requests != 2 || !r.FirstReport {
		t.Fatalf("check with every body flipped = %+v, %v after %d requests; want refused after 2", r, err, always.requests)
	}
	if _, err := os.Stat(filepath.Join(dir, state.LatestFile)); err == nil {
		t.Error("a refused latest.json was kept")
	}
	if st, _ := (state.Store{Dir: dir}).Load(); st.LatestETag != "" {
		t.Errorf("the ETag of a refused latest.json was kept: %q", st.LatestETag)
	}
	if r, err := check(files, dir); err != nil || r.Outcome != CheckAvailable || r.NotModified {
		t.Errorf("check once the network heals = %+v, %v; want available, fetched whole", r, err)
	}
}

// TestCheckFailed: a channel that cannot be read is an error, and recorded
// as a failed check with its reason, so updater status does not go on
// showing the last check that worked.
func TestCheckFailed(t *testing.T) {
	k, _ := keys.Generate(nil)
	ring, _ := keys.NewRing(k.Public())
	src, err := source.Open(context.Background(), "file://"+t.TempDir(), source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := Checker{Source: src, Channel: "stable", Running: image.Slot{Info: image.Info{Version: "1.0.0"}, Serial: 10, Trusted: ring},
		State: state.Store{Dir: filepath.Join(t.TempDir(), "state")}}
	r, err := c.Check(context.Background())
	if !errors.Is(err, source.ErrNotFound) || r.Outcome != CheckFailed {
		t.Fatalf("check of an empty store = %+v, %v; want failed, not found", r, err)
	}
	st, _ := c.State.Load()
	if st.LastCheck == nil || st.LastCheck.Outcome != CheckFailed || st.LastCheck.Reason != err.Error() {
		t.Errorf("last check = %+v, want failed: %v", st.LastCheck, err)
	}
}
