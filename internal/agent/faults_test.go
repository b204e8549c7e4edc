package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/chunk"
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

// installDisk installs the release in dir into slot A of a new disk file
// with slots of slotSize bytes, and opens the disk.
func installDisk(t testing.TB, dir string, slotSize int64) *bootstate.Disk {
	t.Helper()
	ctx := context.Background()
	grubDir := t.TempDir()
	if err := grub.BuildImages(ctx, grubDir); err != nil {
		t.Fatal(err)
	}
	diskPath := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(diskPath)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(partition.MinDiskSize(slotSize))
	f.Close()
	if _, err := install.Install(ctx, install.Options{Disk: diskPath, Image: filepath.Join(dir, release.SlotFile), GrubDir: grubDir, SlotSize: slotSize}); err != nil {
		t.Fatal(err)
	}
	d, err := bootstate.OpenDisk(diskPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// writeRandom writes n deterministic incompressible bytes to name under
// root.
func writeRandom(t testing.TB, root, name string, n int, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 3))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	p := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// slotEquals reports whether slot holds the release image of dir.
func slotEquals(t testing.TB, d *bootstate.Disk, slot bootstate.Slot, dir string) bool {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, release.SlotFile))
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(raw))
	if _, err := d.File.ReadAt(got, d.Layout.Slot(slot).Start); err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(got, raw)
}

// TestFaultProxy puts a fault-injecting proxy between the agent and MinIO.
// With resets, stalls, truncated bodies, flipped bytes and 500/503 answers
// mixed in, Apply retries or resumes and arms a slot equal to the image.
// With every response of the object corrupted, Apply fails, the slot stays
// "writing" and GRUB still boots slot A.
func TestFaultProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MinIO and builds two releases")
	}
	ctx := context.Background()
	srv := s3test.Start(t, "minio")
	k, _ := keys.Generate(nil)
	_, pub, _ := keys.Save(filepath.Join(t.TempDir(), "release"), k)

	// 24 incompressible files of 512 KiB; 1.1.0 replaces every other one,
	// so the delta is a dozen spans of the object, each its own request.
	root := filepath.Join(t.TempDir(), "root")
	writeRandom(t, root, "boot/vmlinuz", 1<<20, 1)
	writeRandom(t, root, "boot/initrd.img", 64<<10, 2)
	for i := range 24 {
		writeRandom(t, root, fmt.Sprintf("usr/lib/blob%02d", i), 512<<10, uint64(100+i))
	}
	v1 := testrelease.Build(t, root, pub, "1.0.0", 1, "")
	for i := 1; i < 24; i += 2 {
		writeRandom(t, root, fmt.Sprintf("usr/lib/blob%02d", i), 512<<10, uint64(200+i))
	}
	v2 := testrelease.Build(t, root, pub, "1.1.0", 2, "")
	d := installDisk(t, v1, 32<<20)

	opts := source.Options{Endpoint: srv.Endpoint, Region: srv.Region, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}
	store, err := source.OpenStore(ctx, srv.URL("fleet"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := release.Publish(ctx, store, release.PublishOptions{Dir: v2, Channel: "stable", Signers: []*keys.PrivateKey{k}, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}

	proxy, err := faultproxy.Start(faultproxy.Options{Upstream: strings.TrimPrefix(srv.Endpoint, "http://"), Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	opts.Endpoint = proxy.URL()
	src, err := source.Open(ctx, srv.URL("fleet"), opts)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := readSlot(d, partition.A)
	if err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(t.TempDir(), "state")
	ck := Checker{Source: src, Channel: "stable", Running: rel, SlotSize: d.Layout.B.Size, State: state.Store{Dir: stateDir}}
	cr, err := ck.Check(ctx)
	if err != nil || cr.Outcome != CheckAvailable {
		t.Fatalf("Check through the proxy = %+v, %v", cr, err)
	}
	m := cr.Manifest
	object := path.Join("stable", m.Image.Key)

	t.Run("mixed", func(t *testing.T) {
		ranged := faultproxy.Ranged(object)
		index := func(r faultproxy.Request) bool { return strings.HasSuffix(r.Path, "/"+path.Base(m.Index.Key)) }
		stall := 300 * time.Millisecond
		// Each mode once at the start, then a random mix: about half of
		// the object's requests go wrong. The index is answered 503 once
		// (the S3 client retries it).
		script := []faultproxy.Fault{
			{Mode: faultproxy.Reset, After: -1}, {Mode: faultproxy.Flip, After: -1},
			{Mode: faultproxy.Truncate, After: -1}, {Mode: faultproxy.Status503},
			{Mode: faultproxy.Stall, After: 4096, For: stall}, {Mode: faultproxy.Status500},
		}
		mix := faultproxy.Weights{faultproxy.Reset: 0.1, faultproxy.Stall: 0.08, faultproxy.Truncate: 0.1,
			faultproxy.Flip: 0.12, faultproxy.Status500: 0.05, faultproxy.Status503: 0.05}
		obj := faultproxy.SoundStore(faultproxy.Sequence(ranged, script, faultproxy.Mix(ranged, mix, stall)))
		idx := faultproxy.Sequence(index, []faultproxy.Fault{{Mode: faultproxy.Status503}}, nil)
		proxy.SetPolicy(func(r faultproxy.Request, rnd *rand.Rand) faultproxy.Fault {
			if f := idx(r, rnd); f.Mode != faultproxy.Pass {
				return f
			}
			return obj(r, rnd)
		})
		before := proxy.Counts()
		u := Updater{Disk: d, Running: partition.A, Source: src, Channel: "stable", Tries: 1, State: state.Store{Dir: stateDir}}
		began := time.Now()
		r, err := u.Apply(ctx, m)
		took := time.Since(began)
		c := proxy.Counts()
		fmt.Printf("faults: proxy did: %v\n", c)
		fmt.Printf("faults: apply took %v: %d requests, %d retries, %d chunks fetched again, fetched %d of %d compressed bytes\n",
			took.Round(time.Millisecond), r.Stats.Requests, r.Stats.Retries, r.Stats.Refetched, r.Stats.FetchedCompressed, m.Image.CompressedSize)
		if err != nil {
			t.Fatalf("Apply through the faulty proxy: %v", err)
		}
		if c.Reset == before.Reset || c.Stalled == before.Stalled || c.Truncated == before.Truncated ||
			c.Flipped == before.Flipped || c.Status500 == before.Status500 || c.Status503 == before.Status503 {
			t.Errorf("not every fault mode happened: %v", c)
		}
		if want := (bootstate.State{Committed: "a", Trial: "b", Tries: 1, A: bootstate.OK, B: bootstate.OK}); r.State != want {
			t.Errorf("boot state = %+v, want %+v", r.State, want)
		}
		if !slotEquals(t, d, partition.B, v2) {
			t.Error("slot B differs from the published image")
		}
		if r.Stats.Retries == 0 || r.Stats.Refetched == 0 {
			t.Errorf("stats %+v: want retries and chunks fetched again", r.Stats)
		}
		if s, _ := d.Load(); func() bool { slot, _ := s.GrubBoot(); return slot != partition.B }() {
			t.Errorf("GRUB would not try slot B: %+v", s)
		}
	})

	t.Run("stall", func(t *testing.T) {
		// A request that stops sending is given up after StallTimeout and
		// made again; Updater keeps the 30 s default, so this drives
		// fetch.Apply itself through the proxy.
		proxy.SetPolicy(faultproxy.Sequence(faultproxy.Ranged(object),
			[]faultproxy.Fault{{Mode: faultproxy.Stall, After: 100 << 10, For: time.Minute}}, nil))
		before := proxy.Counts()
		idx := fetchIndex(t, src, m)
		target, err := os.Create(filepath.Join(t.TempDir(), "slot"))
		if err != nil {
			t.Fatal(err)
		}
		defer target.Close()
		began := time.Now()
		st, err := fetch.Apply(ctx, fetch.Options{Source: src, ObjectKey: object, Index: idx, Target: target,
			StallTimeout: 500 * time.Millisecond, Retry: fetch.Backoff(5, 10*time.Millisecond, 100*time.Millisecond)})
		took := time.Since(began)
		fmt.Printf("faults: stall of 1 min with a 500 ms stall timeout: apply took %v, %d retries; proxy %v\n", took.Round(time.Millisecond), st.Retries, proxy.Counts())
		if err != nil {
			t.Fatal(err)
		}
		if c := proxy.Counts(); c.Stalled != before.Stalled+1 || st.Retries == 0 || took > 20*time.Second {
			t.Errorf("stalled %d times, %d retries, took %v: want one stall cut short and retried", c.Stalled-before.Stalled, st.Retries, took)
		}
		got, _ := os.ReadFile(target.Name())
		raw, _ := os.ReadFile(filepath.Join(v2, release.SlotFile))
		if !bytes.Equal(got, raw) {
			t.Error("target differs from the image")
		}
	})

	t.Run("corrupt", func(t *testing.T) {
		// Every response of the object has a byte flipped: the store is
		// corrupt, not the wire. A fresh state directory (no journal)
		// makes Apply fetch again over the armed slot B.
		proxy.SetPolicy(faultproxy.Always(faultproxy.Ranged(object), faultproxy.Fault{Mode: faultproxy.Flip, After: -1}))
		before := proxy.Counts()
		fresh := t.TempDir()
		u := Updater{Disk: d, Running: partition.A, Source: src, Channel: "stable", Tries: 1, State: state.Store{Dir: fresh}}
		_, err := u.Apply(ctx, m)
		c := proxy.Counts()
		fmt.Printf("faults: corrupt object: proxy flipped a byte in %d responses; Apply: %v\n", c.Flipped-before.Flipped, err)
		if !errors.Is(err, chunk.ErrCorrupt) {
			t.Fatalf("Apply of a corrupt object = %v, want chunk.ErrCorrupt", err)
		}
		s, err := d.Load()
		if err != nil {
			t.Fatal(err)
		}
		if s.B != bootstate.Writing || s.Trial != "" {
			t.Errorf("boot state %+v, want slot B writing, no trial", s)
		}
		if slot, _ := s.GrubBoot(); slot != partition.A {
			t.Errorf("GRUB boots slot %s, want a", slot)
		}
	})
}

// fetchIndex reads the release's chunk index from src.
func fetchIndex(t testing.TB, src source.Source, m *manifest.Manifest) *chunk.Index {
	t.Helper()
	body, _, err := src.Get(context.Background(), path.Join("stable", m.Index.Key), "")
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := chunk.ParseIndex(b)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}
