package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/release"
	"github.com/twinroot/twinroot/internal/source"
	"github.com/twinroot/twinroot/internal/state"
	"github.com/twinroot/twinroot/internal/testrelease"
	"github.com/twinroot/twinroot/internal/testroot"
)

// TestDeltaApply is the delta measurement end to end: two xz
// builds of a root of more than 100 MB that differ by one small file; the
// device running the first fetches under 3% of the second's object, and
// the slot verifies.
func TestDeltaApply(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two releases of a 100 MB root (about a minute)")
	}
	ctx := context.Background()
	began := time.Now()
	k, _ := keys.Generate(nil)
	_, pub, _ := keys.Save(filepath.Join(t.TempDir(), "release"), k)
	root := filepath.Join(t.TempDir(), "root")
	// The files of package chunk's TestDelta, plus a kernel and an initrd,
	// in other words: the bytes this test's figures were measured on.
	spec := testroot.Delta(42).WithBoot(4<<20, 1<<20)
	spec.Words = testroot.Prose
	gen, err := spec.Write(root)
	if err != nil {
		t.Fatal(err)
	}
	rootBytes := gen.Bytes
	if rootBytes < 100<<20 {
		t.Fatalf("root holds %d bytes, want at least 100 MiB", rootBytes)
	}
	v1 := testrelease.Build(t, root, pub, "1.0.0", 1, "")
	if err := os.WriteFile(filepath.Join(root, "etc/conf.d/d25/f2501.conf"), []byte("# changed by the delta test\nanswer = 42\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	v2 := testrelease.Build(t, root, pub, "1.1.0", 2, "")
	built := time.Since(began)

	d := installDisk(t, v1, 192<<20)
	storeDir := t.TempDir()
	store, err := source.OpenStore(ctx, "file://"+storeDir, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := release.Publish(ctx, store, release.PublishOptions{Dir: v2, Channel: "stable", Signers: []*keys.PrivateKey{k}, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	rel, err := readSlot(d, partition.A)
	if err != nil {
		t.Fatal(err)
	}
	st := state.Store{Dir: filepath.Join(t.TempDir(), "state")}
	ck := Checker{Source: store, Channel: "stable", Running: rel, SlotSize: d.Layout.B.Size, State: st}
	cr, err := ck.Check(ctx)
	if err != nil || cr.Outcome != CheckAvailable {
		t.Fatalf("Check = %+v, %v", cr, err)
	}
	u := Updater{Disk: d, Running: partition.A, Source: store, Channel: "stable", Tries: 1, State: st}
	r, err := u.Apply(ctx, cr.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	m := cr.Manifest
	frac := float64(r.Stats.FetchedCompressed) / float64(m.Image.CompressedSize)
	fmt.Printf("delta: root %.1f MB, xz image %.1f MB, object %.1f MB; one small file changed: fetched %d of %d bytes = %.2f%% in %d requests, reused %.1f MB from slot A; apply %v (scan %v, verify %v), builds %v\n",
		float64(rootBytes)/1e6, float64(m.Image.Size)/1e6, float64(m.Image.CompressedSize)/1e6,
		r.Stats.FetchedCompressed, m.Image.CompressedSize, 100*frac, r.Stats.Requests, float64(r.Stats.Reused)/1e6,
		r.Stats.Elapsed.Round(time.Millisecond), r.Stats.Scan.Round(time.Millisecond), r.Stats.Verify.Round(time.Millisecond), built.Round(time.Second))
	if frac >= 0.03 {
		t.Errorf("fetched %.2f%% of the object for a one-file change, want under 3%%", 100*frac)
	}
	if want := (bootstate.State{Committed: "a", Trial: "b", Tries: 1, A: bootstate.OK, B: bootstate.OK}); r.State != want {
		t.Errorf("boot state = %+v, want %+v", r.State, want)
	}
	if !slotEquals(t, d, partition.B, v2) {
		t.Error("slot B differs from the published image")
	}
	if b, err := readSlot(d, partition.B); err != nil || b.Version != "1.1.0" {
		t.Errorf("slot B reads as %+v, %v; want 1.1.0", b, err)
	}
}
