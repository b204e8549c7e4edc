package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twinroot/twinroot/bench/internal/harness"
	"github.com/twinroot/twinroot/image"
	"github.com/twinroot/twinroot/internal/chunk"
	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/release"
	"github.com/twinroot/twinroot/internal/rollout"
)

type options struct {
	harness.Common
	Devices     int
	Interval    time.Duration
	Jitter      time.Duration
	Rollout     time.Duration
	FailShare   float64
	MaxFailure  float64
	MinOutcomes int
	Tolerance   float64 // of a quarter's share, in parts of the fleet
	Workers     int
	Seed        int64
	Stores      []storeSetup
}

func (o options) validate() error {
	switch {
	case o.Devices < 1:
		return fmt.Errorf("-devices %d: want 1 or more", o.Devices)
	case o.Interval < time.Minute:
		return fmt.Errorf("-interval %s: want 1m or more (the agent's least)", o.Interval)
	case o.Rollout < 4*time.Minute:
		return fmt.Errorf("-rollout %s: want 4m or more", o.Rollout)
	case o.Workers < 1:
		return fmt.Errorf("-workers %d: want 1 or more", o.Workers)
	case len(o.Stores) == 0:
		return fmt.Errorf("-stores: want at least one of single, distributed")
	}
	return nil
}

func main() {
	o := options{}
	cli := harness.New("fleet-bench", "./bench/fleet", usage, &o.Common)
	fs := cli.Flags
	fs.IntVar(&o.Devices, "devices", 10000, "simulated devices")
	fs.DurationVar(&o.Interval, "interval", 4*time.Minute+30*time.Second, "a device's check interval (simulated time)")
	fs.DurationVar(&o.Jitter, "jitter", time.Minute, "a device's check jitter, added to the interval")
	fs.DurationVar(&o.Rollout, "rollout", time.Hour, "each staged rollout's duration (simulated time)")
	fs.Float64Var(&o.FailShare, "fail", 0.10, "share of devices whose trial of the failing release fails")
	fs.Float64Var(&o.MaxFailure, "max-failure", 0.05, "the watch's maximum failure share")
	fs.IntVar(&o.MinOutcomes, "min-outcomes", 20, "the watch's minimum of outcomes before it judges")
	fs.Float64Var(&o.Tolerance, "tolerance", 0.02, "largest gap between a quarter's share of devices that began and the rollout's share")
	fs.IntVar(&o.Workers, "workers", 32, "devices served at once")
	fs.Int64Var(&o.Seed, "seed", 1, "seed of the machine ids")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the bench process to this file")
	stores := fs.String("stores", "single,distributed", "stores to run against: single (one MinIO process and drive), distributed (four MinIO processes on this host)")
	exit, ok := cli.Parse(os.Args[1:], func() error {
		for _, name := range strings.Split(*stores, ",") {
			switch strings.TrimSpace(name) {
			case "single":
				o.Stores = append(o.Stores, storeSetup{Name: "minio, 1 process", Nodes: 1})
			case "distributed":
				o.Stores = append(o.Stores, storeSetup{Name: "minio distributed, 4 processes", Nodes: 4})
			case "":
			default:
				return fmt.Errorf("-stores: unknown store %q (want single or distributed)", name)
			}
		}
		return o.validate()
	})
	if !ok {
		os.Exit(exit)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(harness.ExitFail)
		}
		pprof.StartCPUProfile(f)
		code := harness.Main(cli, func(ctx context.Context, log io.Writer) (Report, error) { return run(ctx, o, log) }, writeTable)
		pprof.StopCPUProfile()
		f.Close()
		os.Exit(code)
	}
	os.Exit(harness.Main(cli, func(ctx context.Context, log io.Writer) (Report, error) { return run(ctx, o, log) }, writeTable))
}

const usage = `Simulates a fleet of devices (the real checker, slot engine and reporter;
a simulated boot and clock) against MinIO on 127.0.0.1, then against a
distributed MinIO of four processes: requests per second and bytes at the
store (its audit log), check latency, the share of devices that began a
release staged over an hour at each quarter, and when rollout watch
paused a release that fails on a tenth of the devices. It fails when a
no-change check was not one conditional GET answered 304, a quarter is
off by more than -tolerance, or the watch let half the fleet try the
failing release. Progress goes to stderr, the report to stdout.`

// Report is what one bench run measured.
type Report struct {
	Devices  int        `json:"devices"`
	Interval string     `json:"check_interval"`
	Rollout  string     `json:"rollout"`
	Runs     []StoreRun `json:"runs"`
}

// StoreRun is the fleet against one store.
type StoreRun struct {
	Store     storeSetup `json:"store"`
	Simulated string     `json:"simulated"`
	Seconds   float64    `json:"seconds"` // real time of the simulation
	// Checks by the devices; NotModified of them found latest.json
	// unchanged (the client's view). At the store: latest.json GETs
	// answered 304 and 200, and any other request for it.
	Checks         int64     `json:"checks"`
	NotModified    int64     `json:"not_modified"`
	CheckErrors    int64     `json:"check_errors"`
	Store304       int64     `json:"store_latest_304"`
	Store200       int64     `json:"store_latest_200"`
	StoreOther     int64     `json:"store_latest_other"`
	OneConditional bool      `json:"no_change_is_one_conditional_get"`
	Requests       int64     `json:"requests"` // at the store
	RequestsPerSec float64   `json:"requests_per_second"`
	Bytes          int64     `json:"bytes_served"`
	ByKind         []Kind    `json:"by_kind"`
	P50, P99       float64   `json:"-"`
	P50ms          float64   `json:"check_p50_ms"`
	P99ms          float64   `json:"check_p99_ms"`
	Fetched        int64     `json:"slot_bytes_fetched"`
	ApplyErrors    int       `json:"apply_errors"`
	Quarters       []Quarter `json:"quarters"`
	Failing        Halt      `json:"failing_release"`
}

// Kind is a count of requests of one kind at the store.
type Kind struct {
	requestKind
	Count int64 `json:"count"`
}

// Quarter is a staged rollout at one quarter of its duration.
type Quarter struct {
	At       string  `json:"at"`
	Expected float64 `json:"expected"` // the rollout's share
	Began    float64 `json:"began"`    // devices that began the release, of the fleet
	// InWave is the devices whose bucket is below the rollout's share:
	// the share Began should be, this fleet's buckets being what they are.
	InWave float64 `json:"in_wave"`
}

// Halt is what became of the release that fails on some devices.
type Halt struct {
	Version       string  `json:"version"`
	Paused        bool    `json:"paused"`
	PausedAfter   string  `json:"paused_after"` // from its publication, simulated
	TriedAtPause  float64 `json:"tried_at_pause"`
	TriedAtEnd    float64 `json:"tried_at_end"`
	FailedAtPause int     `json:"failures_at_pause"`
	Outcomes      int     `json:"outcomes_at_pause"`
	Reason        string  `json:"reason"`
	BeforeHalf    bool    `json:"before_half"`
}

func run(ctx context.Context, o options, log io.Writer) (Report, error) {
	logf := func(format string, args ...any) { fmt.Fprintf(log, format+"\n", args...) }
	work := o.Work
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "fleet-bench-"); err != nil {
			return Report{}, err
		}
		defer os.RemoveAll(work)
	}
	rep := Report{Devices: o.Devices, Interval: fmt.Sprintf("%s + up to %s", o.Interval, o.Jitter), Rollout: o.Rollout.String()}
	key, err := keys.Generate(nil)
	if err != nil {
		return rep, err
	}
	logf("building releases 1.0.0, 2.0.0, 3.0.0")
	var vs []*version
	for i, name := range []string{"1.0.0", "2.0.0", "3.0.0"} {
		v, err := buildVersion(ctx, filepath.Join(work, "releases"), key, name, uint64(i+1))
		if err != nil {
			return rep, err
		}
		defer v.file.Close()
		vs = append(vs, v)
	}
	vs[2].failing = true
	var failed error
	for _, setup := range o.Stores {
		r, err := runStore(ctx, o, logf, work, setup, key, vs)
		if err != nil {
			return rep, err
		}
		rep.Runs = append(rep.Runs, r)
		if err := r.check(o); err != nil {
			failed = errors.Join(failed, err)
		}
	}
	if failed != nil {
		writeTable(log, rep)
		return rep, failed
	}
	return rep, nil
}

// check says what in r misses the bench's bars.
func (r StoreRun) check(o options) error {
	var errs []error
	if !r.OneConditional {
		errs = append(errs, fmt.Errorf("%s: %d no-change checks, but the store answered %d of the devices' latest.json GETs with 304, %d with 200, and had %d other requests for it",
			r.Store.Name, r.NotModified, r.Store304, r.Store200, r.StoreOther))
	}
	for _, q := range r.Quarters {
		if math.Abs(q.Began-q.Expected) > o.Tolerance {
			errs = append(errs, fmt.Errorf("%s: at %s of the rollout %.1f %% of devices began it, the rollout reached %.1f %%: more than %.1f points apart",
				r.Store.Name, q.At, q.Began*100, q.Expected*100, o.Tolerance*100))
		}
	}
	if len(r.Quarters) != 4 {
		errs = append(errs, fmt.Errorf("%s: %d quarters of the rollout measured, want 4", r.Store.Name, len(r.Quarters)))
	}
	if !r.Failing.BeforeHalf {
		errs = append(errs, fmt.Errorf("%s: the failing release was not paused before half the fleet tried it (paused: %t; %.1f %% tried it)",
			r.Store.Name, r.Failing.Paused, r.Failing.TriedAtEnd*100))
	}
	if r.ApplyErrors > 0 || r.CheckErrors > 0 {
		errs = append(errs, fmt.Errorf("%s: %d applies and %d checks failed", r.Store.Name, r.ApplyErrors, r.CheckErrors))
	}
	return errors.Join(errs...)
}

// buildVersion builds a release whose root shares all but a small file
// with the others, as an application update does.
func buildVersion(ctx context.Context, dir string, key *keys.PrivateKey, name string, serial uint64) (*version, error) {
	root := filepath.Join(dir, "root-"+name)
	for _, d := range []string{"boot", "usr/app"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, err
		}
	}
	blob := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range blob {
		blob[i] = byte(rng.Uint32())
	}
	app := make([]byte, 8<<10)
	rng = rand.New(rand.NewPCG(serial, 3))
	for i := range app {
		app[i] = byte(rng.Uint32())
	}
	pubBase := filepath.Join(dir, "release")
	pub := pubBase + ".pub"
	if _, err := os.Stat(pub); err != nil {
		if _, pub, err = keys.Save(pubBase, key); err != nil {
			return nil, err
		}
	}
	for p, b := range map[string][]byte{"boot/vmlinuz": blob, "boot/initrd.img": []byte("initrd"), "usr/app/app": app} {
		if err := os.WriteFile(filepath.Join(root, p), b, 0o644); err != nil {
			return nil, err
		}
	}
	out := filepath.Join(dir, name)
	os.RemoveAll(out)
	res, err := release.Build(ctx, release.BuildOptions{Image: image.BuildOptions{Rootfs: root, Trust: []string{pub}, Version: name, Serial: serial}, Out: out})
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", name, err)
	}
	b, err := os.ReadFile(filepath.Join(out, release.IndexFile))
	if err != nil {
		return nil, err
	}
	idx, err := chunk.ParseIndex(b)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(out, release.SlotFile))
	if err != nil {
		return nil, err
	}
	return &version{Name: name, Serial: serial, dir: out, file: f, size: res.Manifest.Image.Size, index: idx}, nil
}

// runStore runs the fleet's three steps (doc.go) against one store.
func runStore(ctx context.Context, o options, logf func(string, ...any), work string, setup storeSetup, key *keys.PrivateKey, vs []*version) (StoreRun, error) {
	r := StoreRun{Store: setup}
	dir := filepath.Join(work, fmt.Sprintf("store-%d", setup.Nodes))
	if err := os.RemoveAll(dir); err != nil {
		return r, err
	}
	// The devices' state directories and targets go on a RAM disk where
	// there is one: the bench measures the store, not this machine's
	// disk flushing ten thousand devices' state files.
	devices, err := os.MkdirTemp(ramDisk(), "fleet-devices-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(devices)
	a, err := startAudit()
	if err != nil {
		return r, err
	}
	defer a.close()
	srv, endpoints, stop, err := launch(filepath.Join(dir, "minio"), setup, a)
	if err != nil {
		return r, err
	}
	defer stop()
	logf("%s: %s; making %d devices", setup.Name, strings.Join(endpoints, " "), o.Devices)
	s, err := newSim(ctx, o, devices, srv, endpoints, key, vs[0])
	if err != nil {
		return r, err
	}
	t0 := time.Now().UTC().Truncate(time.Minute)
	start := t0.Add(-10 * time.Minute)
	s.clock.Store(start.UnixNano())
	if _, err := s.publish(ctx, vs[0], false); err != nil {
		return r, err
	}
	before := a.settle(ctx, func(snapshot) bool { return true })
	// Every device checks once first, and keeps latest.json and its ETag.
	for _, d := range s.devices {
		s.schedule(event{at: start.Add(time.Duration(rand.Int64N(int64(5 * time.Minute)))), kind: checkEvent, dev: d})
	}
	// Step 2: 2.0.0 staged over the rollout; its share at each quarter.
	var m2Rollout = func() (float64, error) { return 0, nil }
	s.at(t0, func(ctx context.Context) error {
		m, err := s.publish(ctx, vs[1], true)
		if err != nil {
			return err
		}
		logf("%s: published 2.0.0, staged over %s", setup.Name, o.Rollout)
		m2Rollout = func() (float64, error) { return rollout.Share(m.Rollout, s.now()), nil }
		return nil
	})
	for q := 1; q <= 4; q++ {
		at := t0.Add(time.Duration(q) * o.Rollout / 4)
		s.at(at, func(context.Context) error {
			want, _ := m2Rollout()
			s.mu.Lock()
			began := float64(s.began["2.0.0"]) / float64(o.Devices)
			s.mu.Unlock()
			in := 0
			for _, d := range s.devices {
				if d.checker.Place.Bucket < want {
					in++
				}
			}
			r.Quarters = append(r.Quarters, Quarter{At: fmt.Sprintf("%d/4", q), Expected: want, Began: began, InWave: float64(in) / float64(o.Devices)})
			logf("%s: 2.0.0 at %d/4 of its rollout: %.1f %% of devices began it, the rollout reached %.1f %%", setup.Name, q, began*100, want*100)
			return nil
		})
	}
	// Step 3: 3.0.0 staged the same way, failing on some devices; the
	// watch every minute.
	t1 := t0.Add(o.Rollout + 10*time.Minute)
	s.end = t1.Add(o.Rollout + 10*time.Minute)
	r.Failing.Version = vs[2].Name
	s.at(t1, func(ctx context.Context) error {
		if _, err := s.publish(ctx, vs[2], true); err != nil {
			return err
		}
		logf("%s: published 3.0.0, staged over %s, failing on %.0f %% of devices", setup.Name, o.Rollout, o.FailShare*100)
		return nil
	})
	w := s.watch()
	var watchTick func(ctx context.Context) error
	watchTick = func(ctx context.Context) error {
		v, _, err := w.Once(ctx)
		if err != nil {
			return fmt.Errorf("rollout watch: %w", err)
		}
		if v.Halt && v.Paused && !r.Failing.Paused {
			s.mu.Lock()
			tried := s.began["3.0.0"]
			s.mu.Unlock()
			r.Failing.Paused = true
			r.Failing.PausedAfter = s.now().Sub(t1).String()
			r.Failing.TriedAtPause = float64(tried) / float64(o.Devices)
			r.Failing.FailedAtPause, r.Failing.Outcomes, r.Failing.Reason = v.Failures, v.Outcomes, v.Reason
			logf("%s: rollout watch paused 3.0.0 after %s: %s; %d devices had begun it", setup.Name, r.Failing.PausedAfter, v.Reason, tried)
			// Ten more minutes: every device sees the pause.
			s.end = s.now().Add(10 * time.Minute)
			return nil
		}
		s.at(s.now().Add(time.Minute), watchTick)
		return nil
	}
	s.at(t1.Add(time.Minute), watchTick)

	logf("%s: simulating %s", setup.Name, s.end.Sub(start))
	began := time.Now()
	if err := s.run(ctx); err != nil {
		return r, err
	}
	r.Seconds = time.Since(began).Seconds()
	r.Simulated = s.end.Sub(start).String()
	s.mu.Lock()
	r.Checks, r.NotModified, r.CheckErrors = s.checks, s.notModified, s.checkErrors
	r.ApplyErrors = len(s.applyErrors)
	if r.ApplyErrors > 0 {
		logf("%s: first apply error: %s", setup.Name, s.applyErrors[0])
	}
	r.Fetched = s.fetched
	r.Failing.TriedAtEnd = float64(s.began["3.0.0"]) / float64(o.Devices)
	lat := sortedLatencies(s.latencies)
	s.mu.Unlock()
	r.Failing.BeforeHalf = r.Failing.Paused && r.Failing.TriedAtEnd < 0.5
	r.P50ms = float64(percentile(lat, 0.50).Microseconds()) / 1000
	r.P99ms = float64(percentile(lat, 0.99).Microseconds()) / 1000

	latest := func(status int) func(requestKind) bool {
		return func(k requestKind) bool {
			return k.Device && k.Object == "latest.json" && k.API == "GetObject" && (status == 0 || k.Status == status)
		}
	}
	got := a.settle(ctx, func(s snapshot) bool { return s.sub(before).where(latest(0)) >= r.Checks-r.CheckErrors }).sub(before)
	r.Requests, r.Bytes = got.total, got.bytes
	r.RequestsPerSec = float64(got.total) / r.Seconds
	r.Store304 = got.where(latest(304))
	r.Store200 = got.where(latest(200))
	r.StoreOther = got.where(func(k requestKind) bool { return k.Device && k.Object == "latest.json" }) - r.Store304 - r.Store200
	r.OneConditional = r.Store304 == r.NotModified && r.StoreOther == 0 && r.Store200+r.Store304 == r.Checks-r.CheckErrors
	for k, n := range got.counts {
		r.ByKind = append(r.ByKind, Kind{k, n})
	}
	sortKinds(r.ByKind)
	return r, nil
}

// ramDisk is /dev/shm where it is a directory, else the temporary one.
func ramDisk() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}

func writeTable(w io.Writer, rep Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%d devices, checking every %s; each release staged over %s\n\n", rep.Devices, rep.Interval, rep.Rollout)
	for _, r := range rep.Runs {
		fmt.Fprintf(tw, "%s: %s simulated in %.0f s\n", r.Store.Name, r.Simulated, r.Seconds)
		fmt.Fprintf(tw, "  checks\t%d (%d found nothing new, %d failed)\n", r.Checks, r.NotModified, r.CheckErrors)
		fmt.Fprintf(tw, "  the devices' latest.json requests at the store\t%d GETs answered 304, %d answered 200, %d other requests\n", r.Store304, r.Store200, r.StoreOther)
		fmt.Fprintf(tw, "  every no-change check one conditional GET answered 304\t%s\n", yes(r.OneConditional))
		fmt.Fprintf(tw, "  requests at the store\t%d (%.0f per second), %.1f MB served\n", r.Requests, r.RequestsPerSec, float64(r.Bytes)/1e6)
		fmt.Fprintf(tw, "  check latency\tp50 %.1f ms, p99 %.1f ms\n", r.P50ms, r.P99ms)
		fmt.Fprintf(tw, "  slot bytes fetched by devices\t%.1f MB (%d apply errors)\n", float64(r.Fetched)/1e6, r.ApplyErrors)
		for _, q := range r.Quarters {
			fmt.Fprintf(tw, "  2.0.0 at %s of its rollout\t%.1f %% began it, rollout at %.1f %% (gap %+.1f points; buckets below the share: %.1f %%)\n",
				q.At, q.Began*100, q.Expected*100, (q.Began-q.Expected)*100, q.InWave*100)
		}
		f := r.Failing
		if f.Paused {
			fmt.Fprintf(tw, "  %s (fails on a share of devices)\tpaused %s after its publication: %s; %.1f %% of devices had begun it, %.1f %% at the end\n",
				f.Version, f.PausedAfter, f.Reason, f.TriedAtPause*100, f.TriedAtEnd*100)
		} else {
			fmt.Fprintf(tw, "  %s (fails on a share of devices)\tnot paused; %.1f %% of devices tried it\n", f.Version, f.TriedAtEnd*100)
		}
		for _, k := range r.ByKind {
			who := "operator"
			if k.Device {
				who = "devices"
			}
			fmt.Fprintf(tw, "    %s: %s %s\t%d × %d\n", who, k.API, k.Object, k.Status, k.Count)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "NO"
}
