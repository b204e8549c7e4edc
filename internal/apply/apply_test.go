package apply

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/refusal"
	"github.com/twinroot/twinroot/internal/testdisk"
)

func squashfs(t *testing.T, version string, payload int) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	os.MkdirAll(filepath.Join(root, "etc/twinroot"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/twinroot/version"), []byte(version), 0o644)
	blob := make([]byte, payload)
	for i := range blob {
		blob[i] = byte(i * 7919)
	}
	os.WriteFile(filepath.Join(root, "blob"), blob, 0o644)
	img := filepath.Join(t.TempDir(), "slot.img")
	if out, err := exec.Command("mksquashfs", root, img, "-noappend", "-all-root", "-noI", "-noD", "-quiet").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
	return img
}

func TestFromFile(t *testing.T) {
	d, err := bootstate.OpenDisk(testdisk.New(t, bootstate.Initial().Env()))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	img := squashfs(t, "2.0.0", 1<<20)
	r, err := FromFile(context.Background(), d, partition.A, Options{Image: img, Tries: 2})
	if err != nil {
		t.Fatal(err)
	}
	want := bootstate.State{Committed: partition.A, Trial: partition.B, Tries: 2, A: bootstate.OK, B: bootstate.OK}
	if r.Slot != partition.B || r.Version != "2.0.0" || r.State != want {
		t.Errorf("FromFile = %+v, want slot b version 2.0.0 state %+v", r, want)
	}
	raw, _ := os.ReadFile(img)
	got := make([]byte, len(raw))
	d.File.ReadAt(got, d.Layout.B.Start)
	if !bytes.Equal(got, raw) {
		t.Error("slot B differs from the image")
	}
}

func TestFromFileRefuses(t *testing.T) {
	d, err := bootstate.OpenDisk(testdisk.New(t, bootstate.Initial().Env()))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	big := squashfs(t, "2.0.0", testdisk.SlotSize+(1<<20))
	if _, err := FromFile(context.Background(), d, partition.A, Options{Image: big}); !errors.Is(err, refusal.ErrDoesNotFit) {
		t.Errorf("FromFile(big) = %v, want refusal.ErrDoesNotFit", err)
	}
	small := squashfs(t, "2.0.0", 1<<10)
	if _, err := FromFile(context.Background(), d, partition.A, Options{Image: small, ExpectSHA256: "00"}); !errors.Is(err, refusal.ErrMismatch) {
		t.Errorf("FromFile(wrong hash) = %v, want refusal.ErrMismatch", err)
	}
	// The refused write leaves slot B marked writing: GRUB never boots it.
	st, _ := d.Load()
	if st.B != bootstate.Writing || st.Trial != "" {
		t.Errorf("after a refused image the state is %+v, want slot b writing and no trial", st)
	}
	if slot, _ := st.GrubBoot(); slot != partition.A {
		t.Errorf("GRUB would boot %s", slot)
	}
	// Running B with A committed (booted by hand): writing A is refused.
	if _, err := FromFile(context.Background(), d, partition.B, Options{Image: small}); !errors.Is(err, bootstate.ErrNotAllowed) {
		t.Errorf("FromFile onto the committed slot = %v, want ErrNotAllowed", err)
	}
}
