package agent

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twinroot/twinroot/image"
	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/fetch"
	"github.com/twinroot/twinroot/internal/grub"
	"github.com/twinroot/twinroot/internal/health"
	"github.com/twinroot/twinroot/internal/install"
	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/refusal"
	"github.com/twinroot/twinroot/internal/release"
	"github.com/twinroot/twinroot/internal/source"
	"github.com/twinroot/twinroot/internal/state"
	"github.com/twinroot/twinroot/internal/testrelease"
)

// TestUpdate installs 1.0.0 on a disk file, publishes 1.1.0 (one file
// changed) to a file:// channel, checks and applies it: slot B holds the
// new image, is armed, and only a small part of the object was fetched.
func TestUpdate(t *testing.T) {
	ctx := context.Background()
	k, pub := testrelease.Key(t)
	root := filepath.Join(t.TempDir(), "root")
	os.MkdirAll(filepath.Join(root, "boot"), 0o755)
	blob := make([]byte, 8<<20)
	rand.New(rand.NewSource(7)).Read(blob)
	os.WriteFile(filepath.Join(root, "boot/vmlinuz"), blob, 0o644)
	os.WriteFile(filepath.Join(root, "boot/initrd.img"), []byte("initrd"), 0o644)
	build := func(version string, serial uint64) string {
		os.WriteFile(filepath.Join(root, "etc-motd"), []byte("welcome to "+version), 0o644)
		return testrelease.Build(t, root, pub, version, serial, "")
	}
	v1, v2 := build("1.0.0", 1), build("1.1.0", 2)
	grubDir := t.TempDir()
	if err := grub.BuildImages(ctx, grubDir); err != nil {
		t.Fatal(err)
	}
	diskPath := filepath.Join(t.TempDir(), "disk.img")
	f, _ := os.Create(diskPath)
	f.Truncate(partition.MinDiskSize(32 << 20))
	f.Close()
	if _, err := install.Install(ctx, install.Options{Disk: diskPath, Image: filepath.Join(v1, release.SlotFile), GrubDir: grubDir, SlotSize: 32 << 20}); err != nil {
		t.Fatal(err)
	}
	storeDir := t.TempDir()
	st, _ := source.OpenStore(ctx, "file://"+storeDir, source.Options{})
	if _, err := release.Publish(ctx, st, release.PublishOptions{Dir: v2, Channel: "stable", Signers: []*keys.PrivateKey{k}, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	d, err := bootstate.OpenDisk(diskPath)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rel, err := readSlot(d, partition.A)
	if err != nil || rel.Version != "1.0.0" || rel.Serial != 1 || len(rel.Trusted) != 1 {
		t.Fatalf("RunningRelease = %+v, %v", rel, err)
	}
	stStore := state.Store{Dir: filepath.Join(t.TempDir(), "state")}
	ck := Checker{Source: st, Channel: "stable", Running: rel, SlotSize: d.Layout.B.Size, State: stStore}
	cr, err := ck.Check(ctx)
	if err != nil || cr.Outcome != CheckAvailable {
		t.Fatalf("Check = %+v, %v", cr, err)
	}
	u := Updater{Disk: d, Running: partition.A, Source: st, Channel: "stable", Tries: 1, State: stStore,
		Retry: fetch.Backoff(2, time.Millisecond, time.Millisecond)}
	// An index that does not match the manifest is refused before a byte is written.
	bad := *cr.Manifest
	bad.Index.SHA256 = "00" + bad.Index.SHA256[2:]
	if _, err := u.Apply(ctx, &bad); !errors.Is(err, refusal.ErrMismatch) {
		t.Errorf("Apply with a wrong index hash = %v, want ErrMismatch", err)
	}
	if s, _ := d.Load(); s != bootstate.Initial() {
		t.Errorf("a refused apply changed the boot state to %+v", s)
	}
	r, err := u.Apply(ctx, cr.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	if want := (bootstate.State{Committed: "a", Trial: "b", Tries: 1, A: bootstate.OK, B: bootstate.OK}); r.State != want {
		t.Errorf("boot state = %+v, want %+v", r.State, want)
	}
	raw, _ := os.ReadFile(filepath.Join(v2, release.SlotFile))
	got := make([]byte, len(raw))
	d.File.ReadAt(got, d.Layout.B.Start)
	if !bytes.Equal(got, raw) {
		t.Error("slot B differs from the published image")
	}
	frac := float64(r.Stats.FetchedCompressed) / float64(cr.Manifest.Image.CompressedSize)
	t.Logf("fetched %d of %d compressed bytes (%.1f%%), reused %d raw bytes", r.Stats.FetchedCompressed, cr.Manifest.Image.CompressedSize, 100*frac, r.Stats.Reused)
	if frac > 0.2 {
		t.Errorf("fetched %.1f%% of the object for a one-file change", 100*frac)
	}
	// The trial of 1.1.0 fails its health gate: the version is remembered
	// and the channel's 1.1.0 is refused from then on.
	bt := Boot{Disk: d, Running: partition.B, Gate: health.Gate{Commands: []string{"false"}, Deadline: 100 * time.Millisecond}, State: &stStore}
	br, err := bt.Run(ctx)
	if err != nil || br.Outcome != OutcomeMarkedBad {
		t.Fatalf("Boot = %+v, %v", br, err)
	}
	if s, _ := stStore.Load(); !s.IsBad("1.1.0") {
		t.Errorf("state after a failed trial = %+v, want 1.1.0 bad", s)
	}
	if cr, err := ck.Check(ctx); err != nil || cr.Outcome != CheckRefused || !bytes.Contains([]byte(cr.Reason), []byte("failed its trial boot")) {
		t.Errorf("Check after the failed trial = %+v, %v", cr, err)
	}
}

func readSlot(d *bootstate.Disk, s bootstate.Slot) (image.Slot, error) {
	p := d.Layout.Slot(s)
	return image.ReadSlot(d.File, p.Start, p.Size)
}
