package partition

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// fakeSystem builds a sysfs tree and /dev directory whose device nodes are
// disk image files.
type fakeDisk struct {
	name      string
	size      int64
	removable bool
	twinroot  bool
	parts     int
}

func fakeSystem(t *testing.T, disks []fakeDisk, mountinfo string) Finder {
	t.Helper()
	root := t.TempDir()
	f := Finder{SysBlock: filepath.Join(root, "sys/block"), DevDir: filepath.Join(root, "dev"), MountInfo: filepath.Join(root, "mountinfo")}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(f.DevDir, 0o755))
	for i, d := range disks {
		dir := filepath.Join(f.SysBlock, d.name)
		must(os.MkdirAll(dir, 0o755))
		rem := "0"
		if d.removable {
			rem = "1"
		}
		must(os.WriteFile(filepath.Join(dir, "removable"), []byte(rem+"\n"), 0o644))
		must(os.WriteFile(filepath.Join(dir, "size"), []byte(fmt.Sprintf("%d\n", d.size/SectorSize)), 0o644))
		must(os.WriteFile(filepath.Join(dir, "dev"), []byte(fmt.Sprintf("254:%d\n", i*16)), 0o644))
		for p := 1; p <= d.parts; p++ {
			pd := filepath.Join(dir, fmt.Sprintf("%s%d", d.name, p))
			must(os.MkdirAll(pd, 0o755))
			must(os.WriteFile(filepath.Join(pd, "dev"), []byte(fmt.Sprintf("254:%d\n", i*16+p)), 0o644))
		}
		img, err := os.Create(filepath.Join(f.DevDir, d.name))
		must(err)
		must(img.Truncate(d.size))
		if d.twinroot {
			l, err := Plan(d.size, 64*MiB)
			must(err)
			must(Write(img, l))
		}
		img.Close()
	}
	must(os.WriteFile(f.MountInfo, []byte(mountinfo), 0o644))
	return f
}

func TestChoose(t *testing.T) {
	size := MinDiskSize(64 * MiB)
	for _, tc := range []struct {
		name     string
		disks    []fakeDisk
		boot     []string
		mounts   string
		wipe     bool
		want     string
		wantErrs []error
	}{
		{name: "first fixed disk", disks: []fakeDisk{{name: "sda", size: size, removable: true}, {name: "vda", size: size}, {name: "vdb", size: size}}, want: "vda"},
		{name: "skips boot medium", disks: []fakeDisk{{name: "vda", size: size}, {name: "vdb", size: size}}, boot: []string{"/dev/vda"}, want: "vdb"},
		{name: "skips twinroot data", disks: []fakeDisk{{name: "vda", size: size, twinroot: true}, {name: "vdb", size: size}}, want: "vdb"},
		{name: "wipe data takes it", disks: []fakeDisk{{name: "vda", size: size, twinroot: true}}, wipe: true, want: "vda"},
		{name: "skips mounted", disks: []fakeDisk{{name: "vda", size: size, parts: 2}, {name: "vdb", size: size}}, mounts: "25 1 254:2 / / rw - ext4 /dev/vda2 rw\n", want: "vdb"},
		{name: "skips loop and cdrom", disks: []fakeDisk{{name: "loop0", size: size}, {name: "sr0", size: size}}, wantErrs: []error{ErrNoDisk}},
		{name: "only twinroot disk", disks: []fakeDisk{{name: "vda", size: size, twinroot: true}}, wantErrs: []error{ErrNoDisk}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := fakeSystem(t, tc.disks, tc.mounts)
			f.BootMedium = tc.boot
			d, err := f.Choose(tc.wipe)
			if len(tc.wantErrs) > 0 {
				for _, e := range tc.wantErrs {
					if !errors.Is(err, e) {
						t.Errorf("Choose err = %v, want %v", err, e)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Choose: %v", err)
			}
			if d.Name != tc.want {
				t.Errorf("Choose = %s, want %s", d.Name, tc.want)
			}
			if d.Size != size {
				t.Errorf("size = %d, want %d", d.Size, size)
			}
		})
	}
}

func TestCheckExplicit(t *testing.T) {
	size := MinDiskSize(64 * MiB)
	f := fakeSystem(t, []fakeDisk{{name: "vda", size: size, twinroot: true}, {name: "vdb", size: size}}, "")
	f.BootMedium = []string{"vdb"}
	vda, err := f.Lookup(filepath.Join(f.DevDir, "vda"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Check(vda, false); !errors.Is(err, ErrHoldsData) {
		t.Errorf("Check(vda) = %v, want ErrHoldsData", err)
	}
	if err := f.Check(vda, true); err != nil {
		t.Errorf("Check(vda, wipe) = %v", err)
	}
	vdb, _ := f.Lookup("vdb")
	if err := f.Check(vdb, true); !errors.Is(err, ErrBootMedium) {
		t.Errorf("Check(vdb) = %v, want ErrBootMedium", err)
	}
	if _, err := f.Lookup("vdc"); !errors.Is(err, ErrNoDisk) {
		t.Errorf("Lookup(vdc) = %v", err)
	}
}

func TestFindTwinroot(t *testing.T) {
	size := MinDiskSize(64 * MiB)
	f := fakeSystem(t, []fakeDisk{{name: "vda", size: size}, {name: "vdb", size: size, twinroot: true}}, "")
	d, err := f.FindTwinroot()
	if err != nil || d.Name != "vdb" {
		t.Errorf("FindTwinroot = %+v, %v; want vdb", d, err)
	}
	f = fakeSystem(t, []fakeDisk{{name: "vda", size: size}}, "")
	if _, err := f.FindTwinroot(); !errors.Is(err, ErrNoDisk) {
		t.Errorf("FindTwinroot without one = %v", err)
	}
}
