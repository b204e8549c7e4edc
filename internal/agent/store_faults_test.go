package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/cli"
	"github.com/twinroot/twinroot/internal/config"
	"github.com/twinroot/twinroot/internal/faultproxy"
	"github.com/twinroot/twinroot/internal/fetch"
	"github.com/twinroot/twinroot/internal/grub"
	"github.com/twinroot/twinroot/internal/install"
	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/manifest"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/release"
	"github.com/twinroot/twinroot/internal/s3test"
	"github.com/twinroot/twinroot/internal/source"
	"github.com/twinroot/twinroot/internal/state"
	"github.com/twinroot/twinroot/internal/testrelease"
)

// The objects a device fetches, in the order it fetches them.
type object int

const (
	latestObj object = iota // stable/latest.json
	indexObj                // stable/1.1.0/chunks.idx
	imageObj                // Range requests of stable/1.1.0/slot.img.zst
	noObj
)

var objectNames = [...]string{"latest.json", "chunks.idx", "slot.img.zst"}

func (o object) String() string { return objectNames[o] }

// objectOf tells which object a request asks for.
func objectOf(p string) object {
	switch {
	case strings.HasSuffix(p, "/stable/"+manifest.Latest):
		return latestObj
	case strings.HasSuffix(p, "/stable/1.1.0/"+release.IndexFile):
		return indexObj
	case strings.HasSuffix(p, "/stable/1.1.0/"+release.ObjectFile):
		return imageObj
	}
	return noObj
}

// Outcomes of a round under a fault.
type outcome int

const (
	armed    outcome = iota // slot b holds 1.1.0 and is armed
	upToDate                // nothing to take; nothing written
	failed                  // a one-line error; slot a, and what GRUB boots, unchanged
)

// The guard every case runs under: short, so a table of stalls stays
// quick, but not so short that a loaded machine (MinIO, versitygw and the
// rounds on 2 cores) trips it without a fault; the bounds the test
// asserts are derived from it.
const (
	tries        = 3
	firstWait    = 50 * time.Millisecond
	mostWait     = 200 * time.Millisecond
	stallTimeout = time.Second
	dripEvery    = 100 * time.Millisecond // a window brings 10 bytes where the floor asks 1024 (fetch.DefaultMinRate)
)

// maxWaits is the most the retry policy waits in one streak of failures:
// tries-1 back-offs, each at most 20% over its nominal wait.
func maxWaits() time.Duration {
	var sum time.Duration
	d := firstWait
	for range tries - 1 {
		sum += min(d, mostWait) * 6 / 5
		d *= 2
	}
	return sum
}

// storeFault is one row of the table.
type storeFault struct {
	name   string
	obj    object
	fault  faultproxy.Fault
	always bool // every request for obj, else the first only
	dns    bool // the store's host name does not resolve (no proxy involved)
	want   outcome
	exit   int    // of a failure: cli.ExitError or cli.ExitRefused
	msg    string // in the one-line error
	// requests at obj: for armed, how many more than a clean round (1
	// unless said); for failed, how many in all (0: one more than the
	// clean round's first request, up to one per chunk refetched).
	requests int
	// stalling says each failed request at obj is seen only when a
	// stall window passes: up to two per request (a window that began
	// with the body's bytes ends with them, the next finds none).
	stalling bool
}

// TestStoreFaults runs whole rounds of the channel (check, then apply
// through the engine into a disk file) against MinIO and versitygw,
// through the fault proxy, with each fault on each object a device
// fetches: latest.json, chunks.idx and the image's ranges. For every
// case: the slot is never armed with bytes other than the signed ones;
// a transient fault ends in an armed slot after a bounded number of
// requests; a permanent one in a one-line error with the exit code of the
// README (refused 3, I/O 1) and slot a and what GRUB boots unchanged;
// the requests (counted at the proxy) and the wall time stay within what
// the retry policy allows; the updater state says what happened, once,
// for updater status.
func TestStoreFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MinIO and versitygw and runs a hundred rounds")
	}
	ctx := context.Background()
	rel := buildFaultReleases(t)

	var mu sync.Mutex
	var table []string
	for _, kind := range s3test.Kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			srv := s3test.Start(t, kind)
			opts := source.Options{Endpoint: srv.Endpoint, Region: srv.Region, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}
			store, err := source.OpenStore(ctx, srv.URL("fleet"), opts)
			if err != nil {
				t.Fatal(err)
			}
			// Publish signs in place: each store publishes copies.
			for _, dir := range []string{rel.v1, rel.v2} {
				cp := filepath.Join(t.TempDir(), filepath.Base(dir))
				if err := os.CopyFS(cp, os.DirFS(dir)); err != nil {
					t.Fatal(err)
				}
				if _, err := release.Publish(ctx, store, release.PublishOptions{Dir: cp, Channel: "stable", Signers: []*keys.PrivateKey{rel.key}, TTL: time.Hour}); err != nil {
					t.Fatal(err)
				}
			}
			v1Manifest, _, err := fetch.Get(ctx, store, "stable/1.0.0/"+manifest.File, "", manifest.DefaultMaxSize, fetch.Guard{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			// A clean round: what the others are measured against.
			clean := runFaultCase(t, rel, srv, storeFault{name: "clean", want: armed}, nil, 0)
			if t.Failed() {
				t.FailNow()
			}
			report := func(c storeFault, r caseResult) {
				mu.Lock()
				defer mu.Unlock()
				obj := c.obj.String()
				switch {
				case c.dns:
					obj = "(host)"
				case c.fault.Mode == faultproxy.Pass:
					obj = "-"
				}
				table = append(table, fmt.Sprintf("%-9s  %-12s  %-28s  %-10s  %-4d  %-9s  %-7v  %s",
					kind, obj, c.name, r.outcome, r.exit, fmt.Sprint(r.requests), r.took.Round(10*time.Millisecond), r.line))
			}
			report(storeFault{name: "clean"}, clean)
			for _, c := range faultCases(rel, v1Manifest) {
				t.Run(c.obj.String()+"/"+c.name, func(t *testing.T) {
					report(c, runFaultCase(t, rel, srv, c, &clean.requests, clean.took))
				})
			}
		})
	}
	t.Cleanup(func() {
		fmt.Printf("store faults: %d-try policy waiting %v..%v, stall time-out %v, drip a byte every %v\n",
			tries, firstWait, mostWait, stallTimeout, dripEvery)
		fmt.Printf("%-9s  %-12s  %-28s  %-10s  %-4s  %-9s  %-7s  %s\n", "store", "object", "fault", "outcome", "exit", "requests", "time", "error")
		for _, l := range table {
			fmt.Println(l)
		}
	})
}

// faultCases is the table: each fault of the proxy's on each object, once
// (transient: the round must end armed) and always (the round must fail
// as the README says), a name that does not resolve, and other objects'
// bytes (v1Manifest is 1.0.0's signed manifest as the store holds it).
func faultCases(rel *faultReleases, v1Manifest []byte) []storeFault {
	anywhere := func(m faultproxy.Mode) faultproxy.Fault { return faultproxy.Fault{Mode: m, After: -1} }
	stall := faultproxy.Fault{Mode: faultproxy.Stall, After: 100, For: time.Minute}
	drip := faultproxy.Fault{Mode: faultproxy.Drip, After: 100, For: dripEvery}
	shortDrip := faultproxy.Fault{Mode: faultproxy.Drip, After: 100, N: 5, For: dripEvery}
	longer := faultproxy.Fault{Mode: faultproxy.Length, N: 10}
	shorter := faultproxy.Fault{Mode: faultproxy.Length, N: -10}
	var cases []storeFault
	for _, obj := range []object{latestObj, indexObj, imageObj} {
		for _, tf := range []struct {
			name     string
			f        faultproxy.Fault
			requests int
			stalling bool
		}{
			{"reset", anywhere(faultproxy.Reset), 1, false},
			{"stall", stall, 1, true},
			{"drip", drip, 1, true},
			{"short drip", shortDrip, 0, false},
			{"truncate", anywhere(faultproxy.Truncate), 1, false},
			{"flip", anywhere(faultproxy.Flip), 1, false},
			{"500", anywhere(faultproxy.Status500), 1, false},
			{"503", anywhere(faultproxy.Status503), 1, false},
			{"length says more", longer, 1, true},
			{"length says less", shorter, 1, false},
		} {
			cases = append(cases, storeFault{name: tf.name + " once", obj: obj, fault: tf.f, want: armed, requests: tf.requests, stalling: tf.stalling})
		}
		cases = append(cases,
			storeFault{name: "403", obj: obj, fault: anywhere(faultproxy.Status403), always: true, want: failed, exit: cli.ExitError,
				msg: "access denied (403 AccessDenied", requests: 1},
			storeFault{name: "404", obj: obj, fault: anywhere(faultproxy.Status404), always: true, want: failed, exit: cli.ExitError,
				msg: "not found", requests: 1})
	}
	cases = append(cases,
		storeFault{name: "stall always", obj: latestObj, fault: stall, always: true, want: failed, exit: cli.ExitError,
			msg: "giving up after 3 tries: stalled", requests: tries, stalling: true},
		storeFault{name: "length says less always", obj: latestObj, fault: shorter, always: true, want: failed, exit: cli.ExitRefused,
			msg: "malformed manifest", requests: 2},
		storeFault{name: "reset always", obj: indexObj, fault: anywhere(faultproxy.Reset), always: true, want: failed, exit: cli.ExitError,
			msg: "giving up after 3 tries", requests: tries},
		// The floor rate, not a time-out on each read, cuts a drip.
		storeFault{name: "drip always", obj: indexObj, fault: drip, always: true, want: failed, exit: cli.ExitError,
			msg: "bytes in 1s, less than 1024", requests: tries, stalling: true},
		storeFault{name: "503 always", obj: imageObj, fault: anywhere(faultproxy.Status503), always: true, want: failed, exit: cli.ExitError,
			msg: "giving up after 3 tries", requests: tries},
		storeFault{name: "length says more always", obj: imageObj, fault: longer, always: true, want: failed, exit: cli.ExitError,
			msg: "giving up after 3 tries: get", requests: tries},
		storeFault{name: "dns", obj: latestObj, dns: true, want: failed, exit: cli.ExitError, msg: "host name does not resolve"},
		storeFault{name: "another object", obj: latestObj, fault: faultproxy.Fault{Mode: faultproxy.Substitute, Body: rel.v1Index},
			always: true, want: failed, exit: cli.ExitRefused, msg: "malformed manifest", requests: 2},
		// An older release's own signed manifest is not newer than the
		// running one: nothing to take (a device that saw 1.1.0 before
		// refuses it as a rollback).
		storeFault{name: "older manifest", obj: latestObj, fault: faultproxy.Fault{Mode: faultproxy.Substitute, Body: v1Manifest},
			always: true, want: upToDate},
		storeFault{name: "another object", obj: indexObj, fault: faultproxy.Fault{Mode: faultproxy.Substitute, Body: rel.v1Index},
			always: true, want: failed, exit: cli.ExitRefused, msg: "bytes differ from what was signed", requests: 2},
		storeFault{name: "another object, same length", obj: indexObj, fault: faultproxy.Fault{Mode: faultproxy.Substitute, Body: cycle(rel.v1Object, len(rel.v2Index))},
			always: true, want: failed, exit: cli.ExitRefused, msg: "bytes differ from what was signed", requests: 2},
		storeFault{name: "another object", obj: imageObj, fault: faultproxy.Fault{Mode: faultproxy.Substitute, Body: rel.v1Object},
			always: true, want: failed, exit: cli.ExitRefused, msg: "bytes differ from what was signed"},
		storeFault{name: "another object, same length", obj: imageObj, fault: faultproxy.Fault{Mode: faultproxy.Substitute, Body: cycle(rel.v1Object, len(rel.v2Object))},
			always: true, want: failed, exit: cli.ExitRefused, msg: "bytes differ from what was signed"},
	)
	return cases
}

// faultReleases are the releases of the table: 1.0.0 installed in slot a,
// 1.1.0 the channel's, and the bytes of 1.0.0's objects to answer with in
// place of 1.1.0's.
type faultReleases struct {
	key               *keys.PrivateKey
	v1, v2            string
	disk              string // 1.0.0 installed, never written: each case copies it
	v1Index, v1Object []byte
	v2Index, v2Object []byte
}

// buildFaultReleases builds the two small releases: a kernel and eight
// 96 KiB files, four of which 1.1.0 changes. The delta skips the kernel's
// chunks at the start of the image and fetches the rest in one Range
// request (the unchanged files between are gaps too small to split it).
func buildFaultReleases(t *testing.T) *faultReleases {
	t.Helper()
	ctx := context.Background()
	k, pub := testrelease.Key(t)
	root := filepath.Join(t.TempDir(), "root")
	writeRandom(t, root, "boot/vmlinuz", 256<<10, 1)
	writeRandom(t, root, "boot/initrd.img", 16<<10, 2)
	for i := range 8 {
		writeRandom(t, root, fmt.Sprintf("usr/lib/blob%d", i), 96<<10, uint64(100+i))
	}
	r := &faultReleases{key: k}
	r.v1 = testrelease.Build(t, root, pub, "1.0.0", 1, "")
	for i := 1; i < 8; i += 2 {
		writeRandom(t, root, fmt.Sprintf("usr/lib/blob%d", i), 96<<10, uint64(200+i))
	}
	r.v2 = testrelease.Build(t, root, pub, "1.1.0", 2, "")
	read := func(dir, name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	r.v1Index, r.v1Object = read(r.v1, release.IndexFile), read(r.v1, release.ObjectFile)
	r.v2Index, r.v2Object = read(r.v2, release.IndexFile), read(r.v2, release.ObjectFile)

	grubDir := t.TempDir()
	if err := grub.BuildImages(ctx, grubDir); err != nil {
		t.Fatal(err)
	}
	r.disk = filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(r.disk)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(partition.MinDiskSize(partition.MinSlotSize))
	f.Close()
	if _, err := install.Install(ctx, install.Options{Disk: r.disk, Image: filepath.Join(r.v1, release.SlotFile), GrubDir: grubDir, SlotSize: partition.MinSlotSize}); err != nil {
		t.Fatal(err)
	}
	return r
}

// cycle returns n bytes of b repeated: another object's bytes, of the
// length of the one asked for.
func cycle(b []byte, n int) []byte {
	out := make([]byte, 0, n)
	for len(out) < n {
		out = append(out, b[:min(len(b), n-len(out))]...)
	}
	return out
}

// caseResult is what one round did.
type caseResult struct {
	outcome  string
	exit     int
	requests [3]int // at the proxy, by object
	took     time.Duration
	line     string // the error
}

// runFaultCase runs one round on a fresh copy of the installed disk,
// through a proxy that applies c's fault, and checks it against clean
// (the requests of a clean round; nil for the clean round itself).
func runFaultCase(t *testing.T, rel *faultReleases, srv *s3test.Server, c storeFault, clean *[3]int, cleanTook time.Duration) caseResult {
	t.Helper()
	ctx := context.Background()
	d := copyDisk(t, rel.disk)
	before, err := d.Load()
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var per [3]int
	var f faultproxy.Policy
	match := func(r faultproxy.Request) bool { return objectOf(r.Path) == c.obj }
	switch {
	case c.fault.Mode == faultproxy.Pass:
	case c.always:
		f = faultproxy.Always(match, c.fault)
	default:
		f = faultproxy.Sequence(match, []faultproxy.Fault{c.fault}, nil)
	}
	proxy, err := faultproxy.Start(faultproxy.Options{Upstream: strings.TrimPrefix(srv.Endpoint, "http://"), Seed: 11,
		Policy: func(r faultproxy.Request, rnd *rand.Rand) faultproxy.Fault {
			mu.Lock()
			if o := objectOf(r.Path); o != noObj {
				per[o]++
			}
			mu.Unlock()
			if f == nil {
				return faultproxy.Fault{}
			}
			return f(r, rnd)
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	opts := source.Options{Endpoint: proxy.URL(), Region: srv.Region, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, MaxAttempts: 1}
	if c.dns {
		// The proxy's port under a name that does not resolve, looked up
		// through a DNS server on 127.0.0.1 that answers NXDOMAIN.
		dns, err := faultproxy.StartDNS()
		if err != nil {
			t.Fatal(err)
		}
		defer dns.Close()
		_, port, _ := net.SplitHostPort(proxy.Addr())
		dialer := &net.Dialer{Resolver: dns.Resolver(), Timeout: 5 * time.Second}
		opts.Endpoint = "http://store.twinroot.invalid:" + port
		opts.HTTPClient = &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	}
	src, err := source.Open(ctx, srv.URL("fleet"), opts)
	if err != nil {
		t.Fatal(err)
	}
	running, err := readSlot(d, partition.A)
	if err != nil {
		t.Fatal(err)
	}
	store := state.Store{Dir: filepath.Join(t.TempDir(), "state")}
	retry := fetch.Backoff(tries, firstWait, mostWait)
	round := Round{
		Checker: &Checker{Source: src, Channel: "stable", Running: running, SlotSize: d.Layout.B.Size, State: store,
			StallTimeout: stallTimeout, Retry: retry},
		Updater: &Updater{Disk: d, Running: partition.A, Source: src, Channel: "stable", Tries: 1, State: store,
			StallTimeout: stallTimeout, Retry: retry},
		Reboot: config.Reboot{Policy: config.PolicyNextBoot}, Offline: true,
	}
	began := time.Now()
	res, err := round.Run(ctx)
	took := time.Since(began)
	proxy.Close()
	mu.Lock()
	r := caseResult{requests: per, took: took, exit: cli.ExitCode(err)}
	mu.Unlock()
	after, lerr := d.Load()
	if lerr != nil {
		t.Fatal(lerr)
	}
	st, serr := store.Load()
	if serr != nil {
		t.Fatal(serr)
	}
	if err != nil {
		r.line = err.Error()
	}
	t.Logf("%v in %v, %v requests (proxy: %v): %v", res.Check.Outcome, took.Round(time.Millisecond), r.requests, proxy.Counts(), err)

	// Never an armed slot with bytes other than the signed ones.
	if s := after.Of(partition.B); s != bootstate.Empty && s != bootstate.Writing && !slotEquals(t, d, partition.B, rel.v2) {
		t.Errorf("slot b is %s and differs from 1.1.0's image", s)
	}
	if !slotEquals(t, d, partition.A, rel.v1) {
		t.Error("the running slot a changed")
	}
	switch c.want {
	case armed:
		r.outcome = "armed"
		if err != nil {
			t.Fatalf("round = %v, want 1.1.0 armed", err)
		}
		if want := (bootstate.State{Committed: "a", Trial: "b", Tries: 1, A: bootstate.OK, B: bootstate.OK}); after != want || res.Apply == nil {
			t.Errorf("boot state %+v, want %+v", after, want)
		}
		if len(st.Failures) != 0 {
			t.Errorf("failures recorded after 1.1.0 was armed: %+v", st.Failures)
		}
	case upToDate:
		r.outcome = "up-to-date"
		if err != nil || res.Check.Outcome != CheckUpToDate || after != before {
			t.Errorf("round = %+v, %v; boot state %+v; want up to date and nothing changed", res.Check, err, after)
		}
	case failed:
		r.outcome = "failed"
		if r.exit == cli.ExitRefused {
			r.outcome = "refused"
		}
		if err == nil || r.exit != c.exit || !strings.Contains(r.line, c.msg) || strings.Contains(r.line, "\n") {
			t.Fatalf("round = %v (exit %d); want one line with %q, exit %d", err, r.exit, c.msg, c.exit)
		}
		// What GRUB boots, the committed slot and slot a stay as they
		// were; slot b may be marked not bootable, as it is before its
		// first byte is written.
		gb, _ := after.GrubBoot()
		if gb != partition.A || after.Committed != before.Committed || after.Trial != before.Trial ||
			after.A != before.A || (after.B != before.B && after.B != bootstate.Writing) {
			t.Errorf("boot state %+v after the failure, was %+v", after, before)
		}
		// One report of it in the updater state, for updater status.
		if c.obj == latestObj {
			want := CheckFailed
			if r.exit == cli.ExitRefused {
				want = CheckRefused
			}
			if lc := st.LastCheck; lc == nil || lc.Outcome != want || lc.Reason != r.line {
				t.Errorf("last check %+v, want %s: %s", lc, want, r.line)
			}
		} else if fl, ok := st.Failures["1.1.0"]; !ok || len(st.Failures) != 1 || fl.Rounds != 1 || fl.Reason != r.line || fl.Refused != (r.exit == cli.ExitRefused) {
			t.Errorf("failures %+v, want 1.1.0 once: %s", st.Failures, r.line)
		}
	}

	// Requests, counted at the proxy, and time, within what the policy allows.
	if clean == nil {
		return r
	}
	want := *clean
	switch {
	case c.want == armed:
		want[c.obj] += c.requests
	case c.want == upToDate:
		want = [3]int{1, 0, 0}
	case c.dns:
		want = [3]int{}
	default:
		for o := c.obj + 1; o < noObj; o++ {
			want[o] = 0
		}
		want[c.obj] = c.requests
		if c.requests == 0 {
			// Another object's frames: the first request, then each
			// frame that failed its hash fetched once more on its own.
			chunks := (len(rel.v2Index) - 96) / 56 // chunk.Index: a header of 96 bytes, 56 per chunk
			if n := r.requests[imageObj]; n >= 2 && n <= 1+chunks {
				want[imageObj] = n
			}
		}
	}
	if r.requests != want {
		t.Errorf("requests by object %v, want %v (clean round: %v)", r.requests, want, *clean)
	}
	// The policy's waits, each stalling request's windows, and the
	// round's own work: five times the clean round's and two seconds
	// more, as the machine running the table runs two servers too.
	bound := maxWaits() + 5*cleanTook + 2*time.Second
	if c.stalling {
		bound += time.Duration(max(c.requests, 1)) * 2 * stallTimeout
	}
	if took > bound {
		t.Errorf("round took %v, more than the %v the policy allows", took, bound)
	}
	return r
}

// copyDisk copies the installed disk, holes and all, and opens the copy.
func copyDisk(t *testing.T, src string) *bootstate.Disk {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "disk.img")
	if err := copySparse(src, dst); err != nil {
		t.Fatal(err)
	}
	d, err := bootstate.OpenDisk(dst)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// copySparse copies the data regions of src to a new file dst of the
// same size, leaving its holes holes (SEEK_DATA, SEEK_HOLE).
func copySparse(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	if err := out.Truncate(fi.Size()); err != nil {
		return err
	}
	for off := int64(0); off < fi.Size(); {
		start, err := in.Seek(off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // no data after off
		}
		if err != nil {
			return err
		}
		end, err := in.Seek(start, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.NewOffsetWriter(out, start), io.NewSectionReader(in, start, end-start)); err != nil {
			return err
		}
		off = end
	}
	return out.Close()
}
