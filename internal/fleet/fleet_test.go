package fleet

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/manifest"
	"github.com/twinroot/twinroot/internal/release"
	"github.com/twinroot/twinroot/internal/report"
	"github.com/twinroot/twinroot/internal/s3test"
	"github.com/twinroot/twinroot/internal/source"
	"github.com/twinroot/twinroot/internal/testrelease"
)

// fixture is a channel on MinIO with 1.0.0 published whole and 2.0.0
// staged over a day from start.
type fixture struct {
	store source.Store
	key   *keys.PrivateKey
	pub   string
	start time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	srv := s3test.Start(t, "minio")
	ctx := context.Background()
	st, err := source.OpenStore(ctx, srv.URL("fleet"), source.Options{Endpoint: srv.Endpoint, Region: srv.Region, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: st, start: time.Now().UTC().Truncate(time.Second).Add(-6 * time.Hour)}
	f.key, f.pub = testrelease.Key(t)
	f.publish(t, "1.0.0", 1, nil)
	f.publish(t, "2.0.0", 2, &manifest.Rollout{Start: f.start, Duration: manifest.Duration(24 * time.Hour)})
	return f
}

func (f *fixture) publish(t *testing.T, version string, serial uint64, r *manifest.Rollout) {
	t.Helper()
	dir := testrelease.Small(t, f.pub, version, serial, 64<<10, "")
	if _, err := release.Publish(context.Background(), f.store, release.PublishOptions{Dir: dir, Channel: "stable",
		Signers: []*keys.PrivateKey{f.key}, TTL: 30 * 24 * time.Hour, Now: f.start, Rollout: r}); err != nil {
		t.Fatal(err)
	}
}

// send writes the report of one device, as a device does.
func (f *fixture) send(t *testing.T, device int, event, version string, serial uint64, running, reason string, at time.Duration) {
	t.Helper()
	r := &report.Reporter{Store: f.store, Device: fmt.Sprintf("%032x", device), Channel: "stable", Bucket: float64(device) / 100,
		Now: func() time.Time { return f.start.Add(at) }}
	r.Send(context.Background(), event, version, serial, running, reason)
}

const gateReason = "health check: web not healthy within 2m0s"

// fleet20 has 20 devices on 1.0.0; 12 tried 2.0.0: 6 committed, 2 in
// trial, 1 failed to apply it, 2 rolled back from the health gate, 1
// silently; a later failed apply of 2.0.0 replaces an earlier one.
func (f *fixture) fleet20(t *testing.T) {
	for d := range 20 {
		f.send(t, d, report.Committed, "1.0.0", 1, "1.0.0", "", time.Minute)
	}
	for d := range 6 {
		f.send(t, d, report.Applied, "2.0.0", 2, "1.0.0", "", time.Hour)
		f.send(t, d, report.Committed, "2.0.0", 2, "2.0.0", "", time.Hour+3*time.Minute)
	}
	f.send(t, 6, report.Applied, "2.0.0", 2, "1.0.0", "", 2*time.Hour)
	f.send(t, 7, report.Applied, "2.0.0", 2, "1.0.0", "", 2*time.Hour)
	f.send(t, 8, report.Failed, "2.0.0", 2, "1.0.0", "fetch: connection reset", 2*time.Hour)
	f.send(t, 8, report.Failed, "2.0.0", 2, "1.0.0", "image does not fit the slot", 3*time.Hour)
	f.send(t, 9, report.RolledBack, "2.0.0", 2, "1.0.0", gateReason, 3*time.Hour)
	f.send(t, 10, report.RolledBack, "2.0.0", 2, "1.0.0", gateReason, 3*time.Hour)
	f.send(t, 11, report.RolledBack, "2.0.0", 2, "1.0.0", report.NoHealthCheck, 3*time.Hour)
}

// TestSummarise summarises reports that devices wrote to MinIO, beside
// objects that are not reports of the channel.
func TestSummarise(t *testing.T) {
	f := newFixture(t)
	f.fleet20(t)
	ctx := context.Background()
	for key, body := range map[string]string{
		"reports/stable/2.0.0/garbage.json":                          "{not json",
		"reports/stable/3.0.0/00000000000000000000000000000001.json": `{"format":1,"device":"00000000000000000000000000000002","channel":"stable","version":"3.0.0","event":"applied"}`,
		"reports/stable-old/2.0.0/x.json":                            `{}`,
	} {
		if err := f.store.Put(ctx, key, strings.NewReader(body), int64(len(body))); err != nil {
			t.Fatal(err)
		}
	}
	now := f.start.Add(12 * time.Hour)
	s, err := Summarise(ctx, Options{Channel: "stable", Releases: f.store, Reports: f.store, Trusted: []keys.PublicKey{f.key.Public()}, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if s.Latest == nil || s.Latest.Version != "2.0.0" || s.Latest.Share != 0.5 || s.Latest.Paused {
		t.Errorf("latest %+v (%s), want 2.0.0 at half its rollout", s.Latest, s.LatestError)
	}
	if s.Devices != 20 || s.Unreadable != 2 {
		t.Errorf("%d devices, %d unreadable; want 20 and 2 (the other channel's object is not listed)", s.Devices, s.Unreadable)
	}
	if want := []Count{{"2.0.0", 2, 6}, {"1.0.0", 1, 14}}; fmt.Sprint(s.Running) != fmt.Sprint(want) {
		t.Errorf("running %v, want %v", s.Running, want)
	}
	r, ok := s.Release("2.0.0")
	want := Release{Version: "2.0.0", Serial: 2, Tried: 12, InTrial: 2, Committed: 6, Failed: 1, RolledBack: 3, Silent: 1, Failure: 0.4,
		Reasons: []Cause{{report.RolledBack, gateReason, 2}, {report.Failed, "image does not fit the slot", 1}, {report.RolledBack, report.NoHealthCheck, 1}}}
	if !ok || fmt.Sprint(r) != fmt.Sprint(want) {
		t.Errorf("2.0.0:\n%+v\nwant\n%+v", r, want)
	}
	if len(s.Releases) != 2 || s.Releases[0].Version != "2.0.0" {
		t.Errorf("releases %+v, want 2.0.0 then 1.0.0", s.Releases)
	}

	// A channel nobody reported on: no device, the release all the same.
	s, err = Summarise(ctx, Options{Channel: "beta", Releases: f.store, Reports: f.store, Now: now})
	if err != nil || s.Devices != 0 || s.Latest != nil || !strings.Contains(s.LatestError, "no release published") {
		t.Errorf("an empty channel: %+v, %v", s, err)
	}
}

// TestWatch pauses a rollout whose failures cross the maximum, once, and
// leaves alone one within it, one with too few outcomes, and a release
// published after the judgement.
func TestWatch(t *testing.T) {
	f := newFixture(t)
	f.fleet20(t)
	ctx := context.Background()
	now := f.start.Add(12 * time.Hour)
	w := &Watch{
		Summary: Options{Channel: "stable", Releases: f.store, Reports: f.store},
		Store:   f.store,
		Stage:   release.StageOptions{Signers: []*keys.PrivateKey{f.key}, TTL: 24 * time.Hour},
		Now:     func() time.Time { return now },
	}
	for _, rule := range []Rule{
		{MaxFailure: 0.05, MinOutcomes: 11}, // 10 outcomes: too few
		{MaxFailure: 0.45, MinOutcomes: 10}, // 40 % is within 45 %
	} {
		w.Rule = rule
		v, _, err := w.Once(ctx)
		if err != nil || v.Halt || v.Paused || v.Outcomes != 10 || v.Failures != 4 {
			t.Errorf("watch %+v: %+v, %v; want no halt", rule, v, err)
		}
	}
	latest := func() *manifest.Manifest {
		m, _, _, err := release.Latest(ctx, f.store, "stable", []keys.PublicKey{f.key.Public()}, now)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if latest().Rollout.PausedAt != nil {
		t.Fatal("a watch within its rule paused the rollout")
	}
	w.Rule = Rule{MaxFailure: 0.05, MinOutcomes: 5}
	v, s, err := w.Once(ctx)
	if err != nil || !v.Halt || !v.Paused || !strings.Contains(v.Reason, "4 of 10 devices failed 2.0.0 (40.0 %), above 5.0 %") {
		t.Fatalf("watch over its rule: %+v, %v", v, err)
	}
	if m := latest(); m.Rollout.PausedAt == nil || !m.Rollout.PausedAt.Equal(now) || !s.Latest.Paused || s.Latest.Share != 0.5 {
		t.Errorf("after the watch, latest.json's rollout is %+v (summary %+v); want paused at half", m.Rollout, s.Latest)
	}
	// Run again (cron): paused already, nothing written.
	_, etag, _ := f.store.Stat(ctx, "stable/latest.json")
	if v, _, err := w.Once(ctx); err != nil || !v.Halt || !v.Paused {
		t.Errorf("a second watch: %+v, %v", v, err)
	}
	if _, again, _ := f.store.Stat(ctx, "stable/latest.json"); again != etag {
		t.Error("a second watch wrote latest.json again")
	}

	// The judged release is no longer the latest when the pause is
	// written: the new release is left alone.
	f.publish(t, "3.0.0", 3, &manifest.Rollout{Start: now, Duration: manifest.Duration(time.Hour)})
	_, err = release.Restage(ctx, f.store, release.StageOptions{Channel: "stable", Version: "2.0.0", Signers: []*keys.PrivateKey{f.key}, TTL: time.Hour, Now: now},
		func(r manifest.Rollout) (manifest.Rollout, error) { return r, nil })
	if err == nil || !strings.Contains(err.Error(), "latest.json of stable names 3.0.0 now, not 2.0.0; nothing changed") {
		t.Errorf("restage of a release no longer the latest: %v", err)
	}
	if m := latest(); m.Version != "3.0.0" || m.Rollout.PausedAt != nil {
		t.Errorf("latest %s %+v, want 3.0.0 untouched", m.Version, m.Rollout)
	}
}

// TestWriteHTMLEscapes keeps a device's words text: a reason is data, not
// markup.
func TestWriteHTMLEscapes(t *testing.T) {
	s := Summary{Channel: "stable", Releases: []Release{{Version: "2.0.0", Tried: 1, Failed: 1, Failure: 1,
		Reasons: []Cause{{report.Failed, `<script>alert(1)</script>`, 1}}}}}
	var b bytes.Buffer
	if err := WriteHTML(&b, s); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "<script>") || !strings.Contains(b.String(), "&lt;script&gt;") {
		t.Errorf("a reason is not escaped:\n%s", b.String())
	}
}
