package main

import (
	"container/heap"
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twinroot/twinroot/image"
	"github.com/twinroot/twinroot/internal/agent"
	"github.com/twinroot/twinroot/internal/chunk"
	"github.com/twinroot/twinroot/internal/engine"
	"github.com/twinroot/twinroot/internal/fetch"
	"github.com/twinroot/twinroot/internal/fleet"
	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/manifest"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/release"
	"github.com/twinroot/twinroot/internal/report"
	"github.com/twinroot/twinroot/internal/rollout"
	"github.com/twinroot/twinroot/internal/s3test"
	"github.com/twinroot/twinroot/internal/source"
	"github.com/twinroot/twinroot/internal/state"
)

const (
	channel   = "stable"
	slotSize  = 4 << 20
	trialTime = 2 * time.Minute // from armed to committed or rolled back
	step      = 5 * time.Second // devices due within one step are served together
	gateError = "health check: app not healthy within 2m0s"
)

// version is a release the fleet runs or takes.
type version struct {
	Name    string
	Serial  uint64
	dir     string
	file    *os.File // its slot.img, the image a device running it holds
	size    int64
	index   *chunk.Index
	failing bool // its trial fails on the devices made to fail
}

// device is one simulated device: the real checker, engine and reporter
// around a state directory and a sparse target of its own.
type device struct {
	n       int
	src     source.Source
	checker *agent.Checker
	rep     *report.Reporter
	state   state.Store
	local   *version
	target  string
	failing bool // a release made to fail fails here
}

type eventKind int

const (
	checkEvent eventKind = iota
	trialEvent
	controlEvent
)

type event struct {
	at      time.Time
	kind    eventKind
	dev     *device
	version *version
	control func(ctx context.Context) error
	seq     int
}

type events []event

func (e events) Len() int { return len(e) }
func (e events) Less(i, j int) bool {
	if !e[i].at.Equal(e[j].at) {
		return e[i].at.Before(e[j].at)
	}
	return e[i].seq < e[j].seq
}
func (e events) Swap(i, j int) { e[i], e[j] = e[j], e[i] }
func (e *events) Push(x any)   { *e = append(*e, x.(event)) }
func (e *events) Pop() any {
	old := *e
	x := old[len(old)-1]
	*e = old[:len(old)-1]
	return x
}

// sim is one fleet against one store.
type sim struct {
	o        options
	key      *keys.PrivateKey
	store    source.Store // the publisher's and the watch's
	devices  []*device
	versions map[string]*version
	clock    atomic.Int64 // simulated time, Unix nanoseconds
	end      time.Time

	qmu   sync.Mutex
	queue events
	seq   int

	mu          sync.Mutex
	latencies   []time.Duration // of each check, real time
	checks      int64
	notModified int64
	checkErrors int64
	applyErrors []string
	fetched     int64 // compressed bytes the devices fetched for their slots
	began       map[string]int
	committed   map[string]int
	rolledBack  map[string]int
}

func (s *sim) now() time.Time { return time.Unix(0, s.clock.Load()).UTC() }

func (s *sim) schedule(e event) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	s.seq++
	e.seq = s.seq
	heap.Push(&s.queue, e)
}

func (s *sim) at(t time.Time, f func(ctx context.Context) error) {
	s.schedule(event{at: t, kind: controlEvent, control: f})
}

// regular is a device's wait to its next check: its interval plus jitter.
func (s *sim) regular() time.Duration {
	return s.o.Interval + rand.N(s.o.Jitter+1)
}

// newSim makes the fleet: n devices, each running from, with its own
// machine id (so its own rollout bucket), state directory and source.
func newSim(ctx context.Context, o options, work string, srv *s3test.Server, endpoints []string, key *keys.PrivateKey, from *version) (*sim, error) {
	s := &sim{o: o, key: key, versions: map[string]*version{from.Name: from},
		began: map[string]int{}, committed: map[string]int{}, rolledBack: map[string]int{}}
	ring, err := keys.NewRing(key.Public())
	if err != nil {
		return nil, err
	}
	var srcs []source.Store
	for _, ep := range endpoints {
		// One connection pool per node, large enough for every worker:
		// a device keeps its connection as a long-running agent does.
		client := &http.Client{Transport: deviceAgent{&http.Transport{MaxIdleConns: 4 * o.Workers, MaxIdleConnsPerHost: 4 * o.Workers, IdleConnTimeout: time.Minute}}}
		st, err := source.OpenStore(ctx, srv.URL("fleet"), source.Options{Endpoint: ep, Region: srv.Region,
			AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, MaxAttempts: 1, HTTPClient: client})
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, st)
	}
	// The publisher's and the watch's requests are not the devices'.
	if s.store, err = source.OpenStore(ctx, srv.URL("fleet"), source.Options{Endpoint: endpoints[0], Region: srv.Region,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(uint64(o.Seed), 1))
	running := image.Slot{Info: image.Info{Size: from.size, Version: from.Name}, Serial: from.Serial, Trusted: ring}
	for i := range o.Devices {
		dir := filepath.Join(work, fmt.Sprint(i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		mid := fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64())
		midFile := filepath.Join(dir, "machine-id")
		if err := os.WriteFile(midFile, []byte(mid+"\n"), 0o444); err != nil {
			return nil, err
		}
		place, err := rollout.PlaceOf("", midFile)
		if err != nil {
			return nil, err
		}
		id, err := report.DeviceID(midFile, dir)
		if err != nil {
			return nil, err
		}
		// Which devices a failing release fails on: a tenth of them,
		// drawn apart from the rollout's buckets.
		h := fnv.New64a()
		h.Write([]byte("fails " + mid))
		st := srcs[i%len(srcs)]
		d := &device{n: i, src: st, state: state.Store{Dir: filepath.Join(dir, "state")}, local: from,
			target: filepath.Join(dir, "slot-b"), failing: float64(h.Sum64()>>11)/(1<<53) < o.FailShare}
		d.checker = &agent.Checker{Source: st, Channel: channel, Running: running, SlotSize: slotSize, State: d.state,
			Now: s.now, Place: place}
		d.rep = &report.Reporter{Store: st, Device: id, Channel: channel, Bucket: place.Bucket, Now: s.now}
		s.devices = append(s.devices, d)
	}
	return s, nil
}

// run serves the events due until the simulated end: control events
// alone, in order; devices due within one step together, on the
// workers, with the clock at the latest of their times.
func (s *sim) run(ctx context.Context) error {
	for ctx.Err() == nil {
		s.qmu.Lock()
		if len(s.queue) == 0 || s.queue[0].at.After(s.end) {
			s.qmu.Unlock()
			return nil
		}
		if s.queue[0].kind == controlEvent {
			e := heap.Pop(&s.queue).(event)
			s.qmu.Unlock()
			s.clock.Store(max(s.clock.Load(), e.at.UnixNano()))
			if err := e.control(ctx); err != nil {
				return err
			}
			continue
		}
		until := s.queue[0].at.Add(step)
		var batch []event
		for len(s.queue) > 0 && s.queue[0].kind != controlEvent && s.queue[0].at.Before(until) && !s.queue[0].at.After(s.end) {
			batch = append(batch, heap.Pop(&s.queue).(event))
		}
		s.qmu.Unlock()
		s.clock.Store(max(s.clock.Load(), batch[len(batch)-1].at.UnixNano()))
		next := make(chan event)
		var wg sync.WaitGroup
		for range min(s.o.Workers, len(batch)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for e := range next {
					s.serve(ctx, e)
				}
			}()
		}
		for _, e := range batch {
			next <- e
		}
		close(next)
		wg.Wait()
	}
	return ctx.Err()
}

func (s *sim) serve(ctx context.Context, e event) {
	switch e.kind {
	case checkEvent:
		s.check(ctx, e.dev)
	case trialEvent:
		s.trial(ctx, e.dev, e.version)
	}
}

// check is one check of the channel, and the apply it may start.
func (s *sim) check(ctx context.Context, d *device) {
	start := time.Now()
	res, err := d.checker.Check(ctx)
	took := time.Since(start)
	now := s.now()
	s.mu.Lock()
	s.checks++
	s.latencies = append(s.latencies, took)
	if res.NotModified {
		s.notModified++
	}
	if err != nil {
		s.checkErrors++
	}
	s.mu.Unlock()
	if err == nil && res.Outcome == agent.CheckAvailable {
		s.apply(ctx, d, res)
		return
	}
	s.schedule(event{at: now.Add(res.NextCheck(s.regular(), now)), kind: checkEvent, dev: d})
}

// apply writes the release into the device's target through the slot
// engine, reports it, and arms its (simulated) trial.
func (s *sim) apply(ctx context.Context, d *device, res agent.CheckResult) {
	m := res.Manifest
	now := s.now()
	s.mu.Lock()
	s.began[m.Version]++
	v := s.versions[m.Version]
	s.mu.Unlock()
	stats, err := s.write(ctx, d, res)
	if err != nil {
		d.rep.Send(ctx, report.Failed, m.Version, m.Serial, d.local.Name, err.Error())
		s.mu.Lock()
		s.applyErrors = append(s.applyErrors, err.Error())
		s.mu.Unlock()
		s.schedule(event{at: now.Add(s.regular()), kind: checkEvent, dev: d})
		return
	}
	s.mu.Lock()
	s.fetched += stats.FetchedCompressed
	s.mu.Unlock()
	d.rep.Send(ctx, report.Applied, m.Version, m.Serial, d.local.Name, "")
	s.schedule(event{at: now.Add(trialTime), kind: trialEvent, dev: d, version: v})
}

func (s *sim) write(ctx context.Context, d *device, res agent.CheckResult) (fetch.Stats, error) {
	rel, err := release.Open(ctx, d.src, channel, nil, res.Manifest, fetch.Guard{})
	if err != nil {
		return fetch.Stats{}, err
	}
	f, err := os.OpenFile(d.target, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fetch.Stats{}, err
	}
	defer f.Close()
	if err := f.Truncate(slotSize); err != nil {
		return fetch.Stats{}, err
	}
	w := engine.Write{Release: rel, Disk: f, Slot: partition.B, Part: partition.Part{Start: 0, Size: slotSize},
		Local: d.local.file, LocalSize: d.local.size, LocalIndex: d.local.index, State: &d.state, Boot: simBoot{}}
	return w.Run(ctx)
}

// trial ends the device's trial of v: committed, or rolled back (and v
// recorded bad, as the agent does) when v fails on this device.
func (s *sim) trial(ctx context.Context, d *device, v *version) {
	now := s.now()
	os.Remove(d.target)
	if v.failing && d.failing {
		d.state.Update(func(st *state.State) { st.MarkBad(v.Name) })
		d.rep.Send(ctx, report.RolledBack, v.Name, v.Serial, d.local.Name, gateError)
		s.mu.Lock()
		s.rolledBack[v.Name]++
		s.mu.Unlock()
	} else {
		d.local = v
		d.checker.Running.Info = image.Info{Size: v.size, Version: v.Name}
		d.checker.Running.Serial = v.Serial
		d.rep.Send(ctx, report.Committed, v.Name, v.Serial, v.Name, "")
		s.mu.Lock()
		s.committed[v.Name]++
		s.mu.Unlock()
	}
	s.schedule(event{at: now.Add(s.regular()), kind: checkEvent, dev: d})
}

// deviceAgent marks the devices' requests in their User-Agent, which the
// store's audit log records: the store tells them from the operator's.
type deviceAgent struct{ rt http.RoundTripper }

const deviceMark = "twinroot-fleet-device"

func (d deviceAgent) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", r.Header.Get("User-Agent")+" "+deviceMark)
	return d.rt.RoundTrip(r)
}

// simBoot stands for the GRUB boot state of a real disk, which this
// bench does not boot.
type simBoot struct{}

func (simBoot) Check() error   { return nil }
func (simBoot) Prepare() error { return nil }
func (simBoot) Arm() error     { return nil }

// publish publishes v on the store at the simulated now, staged over
// the rollout duration (none: everyone at once).
func (s *sim) publish(ctx context.Context, v *version, staged bool) (*manifest.Manifest, error) {
	s.mu.Lock()
	s.versions[v.Name] = v
	s.mu.Unlock()
	var r *manifest.Rollout
	if staged {
		r = &manifest.Rollout{Start: s.now(), Duration: manifest.Duration(s.o.Rollout)}
	}
	res, err := release.Publish(ctx, s.store, release.PublishOptions{Dir: v.dir, Channel: channel,
		Signers: []*keys.PrivateKey{s.key}, TTL: 30 * 24 * time.Hour, Now: s.now(), Rollout: r})
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", v.Name, err)
	}
	return res.Manifest, nil
}

// watch is updater rollout watch, run at the simulated now.
func (s *sim) watch() *fleet.Watch {
	return &fleet.Watch{
		Summary: fleet.Options{Channel: channel, Releases: s.store, Reports: s.store, Trusted: []keys.PublicKey{s.key.Public()}},
		Store:   s.store,
		Rule:    fleet.Rule{MaxFailure: s.o.MaxFailure, MinOutcomes: s.o.MinOutcomes},
		Stage:   release.StageOptions{Signers: []*keys.PrivateKey{s.key}, TTL: 30 * 24 * time.Hour},
		Now:     s.now,
	}
}

// percentile of sorted durations, p in [0, 1].
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

func sortedLatencies(l []time.Duration) []time.Duration {
	c := slices.Clone(l)
	slices.Sort(c)
	return c
}
