// Package testdisk makes small twinroot disks for tests: a sparse file with
// the partition table and an ESP holding the boot environment.
package testdisk

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/twinroot/twinroot/internal/grub"
	"github.com/twinroot/twinroot/internal/partition"
)

// SlotSize of the disks New makes.
const SlotSize = partition.MinSlotSize

// New makes a disk whose boot environment holds env, and returns its path.
func New(t testing.TB, env grub.Env) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	size := partition.MinDiskSize(SlotSize)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	l, err := partition.Plan(size, SlotSize)
	if err != nil {
		t.Fatal(err)
	}
	if err := partition.Write(f, l); err != nil {
		t.Fatal(err)
	}
	files, err := grub.InitialEnvFiles(env)
	if err != nil {
		t.Fatal(err)
	}
	if err := grub.MakeESP(f, l.ESP.Start, l.ESP.Size, files); err != nil {
		t.Fatal(err)
	}
	return path
}
