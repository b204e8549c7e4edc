package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/manifest"
	"github.com/twinroot/twinroot/internal/release"
	"github.com/twinroot/twinroot/internal/report"
	"github.com/twinroot/twinroot/internal/rollout"
	"github.com/twinroot/twinroot/internal/source"
)

// Summary is a channel's fleet at a time (doc.go).
type Summary struct {
	Channel string    `json:"channel"`
	Time    time.Time `json:"time"`
	// Latest is the channel's latest release, nil when latest.json could
	// not be read (LatestError says why).
	Latest      *Latest `json:"latest,omitempty"`
	LatestError string  `json:"latest_error,omitempty"`
	// Devices is the number of devices that reported on the channel.
	Devices int `json:"devices"`
	// Running is the devices per version they run, newest first.
	Running []Count `json:"running"`
	// Releases are the releases devices reported about, newest first.
	Releases []Release `json:"releases"`
	// Unreadable counts report objects that could not be read or are not
	// reports of this channel.
	Unreadable int `json:"unreadable,omitempty"`
}

// Latest is the channel's latest release and its rollout now.
type Latest struct {
	Version string            `json:"version"`
	Serial  uint64            `json:"serial"`
	Rollout *manifest.Rollout `json:"rollout,omitempty"`
	// Share is the part of the fleet the rollout has reached, 0 to 1; -1
	// before it starts.
	Share  float64 `json:"share"`
	Paused bool    `json:"paused,omitempty"`
}

// Count is a number of devices on a version.
type Count struct {
	Version string `json:"version"`
	Serial  uint64 `json:"serial,omitempty"`
	Devices int    `json:"devices"`
}

// Release is what the devices reported about one release (doc.go).
type Release struct {
	Version    string  `json:"version"`
	Serial     uint64  `json:"serial"`
	Tried      int     `json:"tried"`
	InTrial    int     `json:"in_trial"`
	Committed  int     `json:"committed"`
	Failed     int     `json:"failed"`
	RolledBack int     `json:"rolled_back"`
	Silent     int     `json:"silent_rollbacks"`
	Failure    float64 `json:"failure_share"`
	Reasons    []Cause `json:"reasons,omitempty"`
}

// Outcomes is the number of devices that reached an outcome.
func (r Release) Outcomes() int { return r.Committed + r.Failed + r.RolledBack }

// Cause is one reason of failed or rolled-back reports and its devices.
type Cause struct {
	Event   string `json:"event"`
	Reason  string `json:"reason"`
	Devices int    `json:"devices"`
}

// Options of Summarise.
type Options struct {
	Channel string
	// Releases is the store of the channel's latest.json; Reports the
	// store the devices report to (often the same).
	Releases source.Source
	Reports  source.Store
	// Trusted, when set, are the keys latest.json must be signed by.
	Trusted []keys.PublicKey
	Now     time.Time
	// LatestOnly reads only the reports of the latest release (a watch
	// needs no other); Devices and Running then count its devices.
	LatestOnly bool
	// Parallel reads of report objects; 0: 16.
	Parallel int
}

// Summarise reads the channel's reports and latest release. Reports that
// cannot be read are counted, not fatal; a store that cannot be listed is.
func Summarise(ctx context.Context, o Options) (Summary, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	s := Summary{Channel: o.Channel, Time: o.Now.UTC()}
	if m, _, _, err := release.Latest(ctx, o.Releases, o.Channel, o.Trusted, o.Now); err != nil {
		s.LatestError = err.Error()
	} else {
		s.Latest = &Latest{Version: m.Version, Serial: m.Serial, Rollout: m.Rollout,
			Share: rollout.Share(m.Rollout, o.Now), Paused: m.Rollout != nil && m.Rollout.PausedAt != nil}
	}
	version := ""
	if o.LatestOnly {
		if s.Latest == nil {
			return s, errors.New(s.LatestError)
		}
		version = s.Latest.Version
	}
	events, unreadable, err := Load(ctx, o.Reports, o.Channel, version, o.Parallel)
	if err != nil {
		return s, err
	}
	s.Unreadable = unreadable
	s.add(events)
	return s, nil
}

// Load reads the report objects of the channel (of one version of it, if
// not ""): the events, and how many objects were not readable reports.
func Load(ctx context.Context, st source.Store, channel, version string, parallel int) ([]report.Event, int, error) {
	if parallel <= 0 {
		parallel = 16
	}
	dir := path.Join("reports", channel, version) + "/"
	objs, err := st.List(ctx, dir)
	if err != nil {
		return nil, 0, fmt.Errorf("list the reports of %s: %w", channel, err)
	}
	var keys []string
	for _, o := range objs {
		if strings.HasPrefix(o.Key, dir) && strings.HasSuffix(o.Key, ".json") {
			keys = append(keys, o.Key)
		}
	}
	events := make([]report.Event, len(keys))
	ok := make([]bool, len(keys))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(parallel, len(keys)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				events[i], ok[i] = read(ctx, st, keys[i], channel)
			}
		}()
	}
	for i := range keys {
		next <- i
	}
	close(next)
	wg.Wait()
	var out []report.Event
	for i, ev := range events {
		if ok[i] {
			out = append(out, ev)
		}
	}
	return out, len(keys) - len(out), ctx.Err()
}

// read reads one report object: false when it cannot be read, or is not
// the report its key says.
func read(ctx context.Context, st source.Store, key, channel string) (report.Event, bool) {
	body, _, err := st.Get(ctx, key, "")
	if err != nil {
		return report.Event{}, false
	}
	defer body.Close()
	var ev report.Event
	if err := json.NewDecoder(io.LimitReader(body, 64<<10)).Decode(&ev); err != nil {
		return report.Event{}, false
	}
	if ev.Format != report.Format || ev.Channel != channel || report.Key(ev) != key {
		return report.Event{}, false
	}
	switch ev.Event {
	case report.Applied, report.Committed, report.Failed, report.RolledBack:
		return ev, true
	}
	return report.Event{}, false
}

// add counts events, one per device and release.
func (s *Summary) add(events []report.Event) {
	releases := map[string]*Release{}
	causes := map[string]map[[2]string]int{}
	latest := map[string]report.Event{} // device: its latest event
	for _, ev := range events {
		r := releases[ev.Version]
		if r == nil {
			r = &Release{Version: ev.Version}
			releases[ev.Version] = r
			causes[ev.Version] = map[[2]string]int{}
		}
		r.Serial = max(r.Serial, ev.Serial)
		r.Tried++
		switch ev.Event {
		case report.Applied:
			r.InTrial++
		case report.Committed:
			r.Committed++
		case report.Failed:
			r.Failed++
		case report.RolledBack:
			r.RolledBack++
			if ev.Reason == report.NoHealthCheck {
				r.Silent++
			}
		}
		if ev.Event == report.Failed || ev.Event == report.RolledBack {
			causes[ev.Version][[2]string{ev.Event, ev.Reason}]++
		}
		if l, ok := latest[ev.Device]; !ok || ev.Time.After(l.Time) || ev.Time.Equal(l.Time) && ev.Serial > l.Serial {
			latest[ev.Device] = ev
		}
	}
	serials := map[string]uint64{}
	for v, r := range releases {
		if n := r.Outcomes(); n > 0 {
			r.Failure = float64(r.Failed+r.RolledBack) / float64(n)
		}
		for c, n := range causes[v] {
			r.Reasons = append(r.Reasons, Cause{Event: c[0], Reason: c[1], Devices: n})
		}
		slices.SortFunc(r.Reasons, func(a, b Cause) int {
			if a.Devices != b.Devices {
				return b.Devices - a.Devices
			}
			return strings.Compare(a.Event+a.Reason, b.Event+b.Reason)
		})
		s.Releases = append(s.Releases, *r)
		serials[v] = r.Serial
	}
	slices.SortFunc(s.Releases, func(a, b Release) int { return newer(a.Serial, a.Version, b.Serial, b.Version) })
	running := map[string]int{}
	for _, ev := range latest {
		v := ev.Running
		if ev.Event == report.Committed {
			v = ev.Version
		}
		running[v]++
	}
	for v, n := range running {
		s.Running = append(s.Running, Count{Version: v, Serial: serials[v], Devices: n})
	}
	slices.SortFunc(s.Running, func(a, b Count) int { return newer(a.Serial, a.Version, b.Serial, b.Version) })
	s.Devices = len(latest)
}

// newer orders releases newest first: by serial, then by version.
func newer(sa uint64, va string, sb uint64, vb string) int {
	switch {
	case sa > sb:
		return -1
	case sa < sb:
		return 1
	}
	return strings.Compare(vb, va)
}

// Release returns the summary of version, and whether any device reported
// about it.
func (s Summary) Release(version string) (Release, bool) {
	for _, r := range s.Releases {
		if r.Version == version {
			return r, true
		}
	}
	return Release{Version: version}, false
}
