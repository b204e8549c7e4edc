package install

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/testenv"
)

func TestInstallLoopDevice(t *testing.T) {
	testenv.NeedRoot(t)
	g := grubDir(t)
	img := squashfs(t, "2.0.0", 1<<20)
	dev, file := testenv.LoopDisk(t, partition.MinDiskSize(slotSize))
	finder := partition.System()
	finder.BootMedium = []string{dev}
	before := testenv.FileSHA256(t, file)
	_, err := Install(context.Background(), Options{Disk: dev, Image: img, GrubDir: g, SlotSize: slotSize, Finder: &finder})
	if !errors.Is(err, partition.ErrBootMedium) {
		t.Fatalf("Install onto the boot medium = %v, want ErrBootMedium", err)
	}
	if testenv.FileSHA256(t, file) != before {
		t.Fatal("the boot medium changed")
	}
	finder.BootMedium = nil
	res, err := Install(context.Background(), Options{Disk: dev, Image: img, GrubDir: g, SlotSize: slotSize, Finder: &finder})
	if err != nil {
		t.Fatal(err)
	}
	if res.Image.Version != "2.0.0" {
		t.Errorf("version = %q", res.Image.Version)
	}
	if out, err := exec.Command("sgdisk", "-v", dev).CombinedOutput(); err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk -v %s: %v\n%s", dev, err, out)
	}
	d, err := bootstate.OpenDisk(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if st, err := d.Load(); err != nil || st != bootstate.Initial() {
		t.Errorf("boot state on %s = %+v, %v", dev, st, err)
	}
	// A second install without --wipe-data is refused: the device holds data.
	if _, err := Install(context.Background(), Options{Disk: dev, Image: img, GrubDir: g, SlotSize: slotSize, Finder: &finder}); !errors.Is(err, partition.ErrHoldsData) {
		t.Errorf("reinstall = %v, want ErrHoldsData", err)
	}
}
