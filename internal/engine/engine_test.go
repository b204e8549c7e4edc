package engine_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/twinroot/twinroot/internal/engine"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/refusal"
	"github.com/twinroot/twinroot/internal/release"
	"github.com/twinroot/twinroot/internal/state"
	"github.com/twinroot/twinroot/internal/testrelease"
)

// boot records the order of the boot protocol's steps and what the target
// held when each was taken.
type boot struct {
	steps    []string
	disk     *os.File
	part     partition.Part
	checkErr error
}

func (b *boot) record(step string) {
	head := make([]byte, 4)
	b.disk.ReadAt(head, b.part.Start)
	if bytes.Equal(head, []byte("hsqs")) {
		step += " (written)"
	}
	b.steps = append(b.steps, step)
}

func (b *boot) Check() error   { b.record("check"); return b.checkErr }
func (b *boot) Prepare() error { b.record("prepare"); return nil }
func (b *boot) Arm() error     { b.record("arm"); return nil }

func setup(t *testing.T, slotSize int64) (*release.Release, *os.File, partition.Part) {
	t.Helper()
	ctx := context.Background()
	k, pub := testrelease.Key(t)
	dir := testrelease.Small(t, pub, "1.0.0", 1, 1<<20, "")
	if _, _, err := release.SignDir(ctx, dir, "stable", time.Now(), time.Hour, k); err != nil {
		t.Fatal(err)
	}
	rel, _, err := release.OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	disk, err := os.Create(filepath.Join(t.TempDir(), "disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { disk.Close() })
	part := partition.Part{Start: 1 << 20, Size: slotSize}
	disk.Truncate(part.End())
	return rel, disk, part
}

// The order of the boot protocol: check and prepare before the first byte,
// arm after the last; the slot's index is kept once armed.
func TestWriteOrder(t *testing.T) {
	rel, disk, part := setup(t, 8<<20)
	st := &state.Store{Dir: t.TempDir()}
	b := &boot{disk: disk, part: part}
	w := engine.Write{Release: rel, Disk: disk, Slot: partition.B, Part: part, State: st, Boot: b}
	stats, err := w.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := b.steps, []string{"check", "prepare", "arm (written)"}; !slices.Equal(got, want) {
		t.Errorf("steps = %v, want %v", got, want)
	}
	if stats.Fetched != rel.Manifest.Image.Size {
		t.Errorf("fetched %d of %d bytes with nothing local", stats.Fetched, rel.Manifest.Image.Size)
	}
	if idx := st.SlotIndex("b"); idx == nil || idx.SHA256 != rel.Index.SHA256 {
		t.Error("slot b's index not kept")
	}
}

// A refusal before the first write leaves the target and the boot state
// untouched.
func TestWriteRefusesFirst(t *testing.T) {
	for _, tc := range []struct {
		name     string
		slotSize int64
		checkErr error
		want     error
	}{
		{"does not fit", 1 << 20, nil, refusal.ErrDoesNotFit},
		{"boot state", 8 << 20, refusal.New("not allowed"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rel, disk, part := setup(t, tc.slotSize)
			b := &boot{disk: disk, part: part, checkErr: tc.checkErr}
			w := engine.Write{Release: rel, Disk: disk, Slot: partition.B, Part: part, Boot: b}
			_, err := w.Run(context.Background())
			want := tc.want
			if want == nil {
				want = tc.checkErr
			}
			if !errors.Is(err, want) || !refusal.Is(err) {
				t.Fatalf("Run = %v, want a refusal wrapping %v", err, want)
			}
			for _, s := range b.steps {
				if s != "check" {
					t.Errorf("step %q taken after a refusal", s)
				}
			}
			head := make([]byte, 4)
			disk.ReadAt(head, part.Start)
			if !bytes.Equal(head, make([]byte, 4)) {
				t.Error("the slot was written")
			}
		})
	}
}
