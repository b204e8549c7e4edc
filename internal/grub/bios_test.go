package grub

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const mib = 1 << 20

// instLayout is the test disk: the first two partitions of twinroot's layout
// and one more Linux partition.
type instLayout struct {
	path                string
	biosStart, biosSize int64
	espStart, espSize   int64
}

func instRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is not installed: %v", name, err)
	}
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// instDisk makes a sparse disk image partitioned with sgdisk.
func instDisk(t *testing.T) instLayout {
	t.Helper()
	l := instLayout{
		path:      filepath.Join(t.TempDir(), "disk.img"),
		biosStart: 1 * mib, biosSize: 1 * mib,
		espStart: 2 * mib, espSize: 128 * mib,
	}
	f, err := os.Create(l.path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(l.espStart + l.espSize + 16*mib + 1*mib); err != nil {
		t.Fatal(err)
	}
	f.Close()
	instRun(t, "sgdisk",
		"-n", "1:2048:4095", "-t", "1:EF02", "-c", "1:twinroot-bios",
		"-n", "2:4096:+128M", "-t", "2:EF00", "-c", "2:twinroot-esp",
		"-n", "3:0:+16M", "-t", "3:8300", "-c", "3:twinroot-a",
		l.path)
	return l
}

func instReadAt(t *testing.T, path string, off, n int64) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

func instInstallBIOS(t *testing.T, l instLayout, img Images) {
	t.Helper()
	f, err := os.OpenFile(l.path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := InstallBIOS(f, l.biosStart, l.biosSize, img); err != nil {
		t.Fatal(err)
	}
}

func TestInstallBIOS(t *testing.T) {
	img := instImages(t)
	l := instDisk(t)
	before := instReadAt(t, l.path, 0, sectorSize)

	instInstallBIOS(t, l, img)

	if out := instRun(t, "sgdisk", "-v", l.path); !strings.Contains(out, "No problems found") {
		t.Errorf("sgdisk -v after InstallBIOS:\n%s", out)
	}
	mbr := instReadAt(t, l.path, 0, sectorSize)
	for _, r := range [][2]int{{0x03, 0x5a}, {0x1b8, 0x200}} {
		if !bytes.Equal(mbr[r[0]:r[1]], before[r[0]:r[1]]) {
			t.Errorf("MBR bytes [%#x, %#x) changed", r[0], r[1])
		}
	}
	// Everything else is boot.img but the core.img LBA and the drive check.
	want := append([]byte(nil), img.BootImg...)
	binary.LittleEndian.PutUint64(want[0x5c:], uint64(l.biosStart/sectorSize))
	want[0x66], want[0x67] = 0x90, 0x90
	for _, r := range [][2]int{{0, 0x03}, {0x5a, 0x1b8}} {
		if !bytes.Equal(mbr[r[0]:r[1]], want[r[0]:r[1]]) {
			t.Errorf("MBR bytes [%#x, %#x) = %x, want %x", r[0], r[1], mbr[r[0]:r[1]], want[r[0]:r[1]])
		}
	}
	if got, want := binary.LittleEndian.Uint64(mbr[0x5c:]), uint64(2048); got != want {
		t.Errorf("core.img LBA in the MBR = %d, want %d", got, want)
	}

	sectors := int64(len(img.CoreImg)+sectorSize-1) / sectorSize
	core := instReadAt(t, l.path, l.biosStart, sectors*sectorSize)
	bl := core[blocklistStart:sectorSize]
	if got, want := binary.LittleEndian.Uint64(bl), uint64(2049); got != want {
		t.Errorf("blocklist start = %d, want %d", got, want)
	}
	if got, want := int64(binary.LittleEndian.Uint16(bl[8:])), sectors-1; got != want {
		t.Errorf("blocklist length = %d, want %d", got, want)
	}
	if got, want := bl[10:12], img.CoreImg[sectorSize-2:sectorSize]; !bytes.Equal(got, want) {
		t.Errorf("blocklist segment = %x, want %x (as built)", got, want)
	}
	if !bytes.Equal(core[:blocklistStart], img.CoreImg[:blocklistStart]) ||
		!bytes.Equal(core[sectorSize:len(img.CoreImg)], img.CoreImg[sectorSize:]) ||
		!bytes.Equal(core[len(img.CoreImg):], make([]byte, len(core)-len(img.CoreImg))) {
		t.Errorf("core.img on disk differs from the built one outside the blocklist")
	}
}

func TestInstallBIOSRefuses(t *testing.T) {
	img := instImages(t)
	for _, tt := range []struct {
		name     string
		biosSize int64
		wipeMBR  bool
		is       error
	}{
		{name: "core too big", biosSize: 64 * 1024, is: ErrCoreDoesNotFit},
		{name: "no MBR", biosSize: mib, wipeMBR: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := instDisk(t)
			f, err := os.OpenFile(l.path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if tt.wipeMBR {
				if _, err := f.WriteAt(make([]byte, sectorSize), 0); err != nil {
					t.Fatal(err)
				}
			}
			before := instReadAt(t, l.path, 0, l.espStart)
			err = InstallBIOS(f, l.biosStart, tt.biosSize, img)
			if err == nil {
				t.Fatal("InstallBIOS succeeded")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("InstallBIOS error = %v, want %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), "nothing written") {
				t.Errorf("InstallBIOS error %q does not say nothing was written", err)
			}
			if after := instReadAt(t, l.path, 0, l.espStart); !bytes.Equal(before, after) {
				t.Errorf("InstallBIOS wrote to the disk although it failed")
			}
		})
	}
}
