package install

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twinroot/twinroot/image"
	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/chunk"
	"github.com/twinroot/twinroot/internal/cli"
	"github.com/twinroot/twinroot/internal/grub"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/refusal"
	"github.com/twinroot/twinroot/internal/release"
	"github.com/twinroot/twinroot/internal/testenv"
	"github.com/twinroot/twinroot/internal/testrelease"
)

const slotSize = 32 * partition.MiB

func grubDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := grub.BuildImages(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// squashfs builds a slot image of about payload random bytes.
func squashfs(t *testing.T, version string, payload int) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	os.MkdirAll(filepath.Join(root, "boot"), 0o755)
	os.MkdirAll(filepath.Join(root, "etc/twinroot"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/twinroot/version"), []byte(version+"\n"), 0o644)
	blob := make([]byte, payload)
	for i := range blob {
		blob[i] = byte(i*7919 + i/4096*31)
	}
	os.WriteFile(filepath.Join(root, "boot/vmlinuz"), blob, 0o644)
	os.WriteFile(filepath.Join(root, "boot/initrd.img"), []byte("initrd"), 0o644)
	img := filepath.Join(t.TempDir(), "slot.img")
	if out, err := exec.Command("mksquashfs", root, img, "-noappend", "-all-root", "-comp", "gzip", "-noI", "-noD", "-quiet").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
	return img
}

func newDisk(t *testing.T, size int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return path
}

func extract(t *testing.T, disk string, p partition.Part) string {
	t.Helper()
	f, _ := os.Open(disk)
	defer f.Close()
	out := filepath.Join(t.TempDir(), "part.img")
	o, _ := os.Create(out)
	defer o.Close()
	if _, err := io.Copy(o, io.NewSectionReader(f, p.Start, p.Size)); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestInstall(t *testing.T) {
	g := grubDir(t)
	img := squashfs(t, "1.0.0", 3<<20)
	disk := newDisk(t, partition.MinDiskSize(slotSize)+10*partition.MiB)
	cfg := filepath.Join(t.TempDir(), "device.yaml")
	os.WriteFile(cfg, []byte("source: file:///srv/releases\nchannel: stable\n"), 0o600)
	var progressed int64
	res, err := Install(context.Background(), Options{
		Disk: disk, Image: img, GrubDir: g, SlotSize: slotSize, Config: cfg,
		Progress: func(done, total int64) { progressed = done },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Image.Version != "1.0.0" || res.SHA256 != testenv.FileSHA256(t, img) || progressed != res.Image.Size {
		t.Errorf("result = %+v (progress %d), want version 1.0.0 and the image's hash", res, progressed)
	}
	if out, err := exec.Command("sgdisk", "-v", disk).CombinedOutput(); err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk -v: %v\n%s", err, out)
	}
	l := res.Layout
	if out, err := exec.Command("fsck.fat", "-n", extract(t, disk, l.ESP)).CombinedOutput(); err != nil {
		t.Errorf("fsck.fat -n: %v\n%s", err, out)
	}
	data := extract(t, disk, l.Data)
	if out, err := exec.Command("e2fsck", "-fn", data).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn: %v\n%s", err, out)
	}
	if out, err := exec.Command("debugfs", "-R", "cat /twinroot/device.yaml", data).Output(); err != nil || string(out) != "source: file:///srv/releases\nchannel: stable\n" {
		t.Errorf("device.yaml on the data partition = %q, %v", out, err)
	}
	if out, _ := exec.Command("debugfs", "-R", "stat /twinroot/device.yaml", data).Output(); !strings.Contains(string(out), "Mode:  0600") {
		t.Errorf("device.yaml mode: %s", out)
	}
	// The state directory holds slot A's index, so the first apply does
	// not scan slot A.
	out, err := exec.Command("debugfs", "-R", "cat /twinroot/state/slot-a.idx", data).Output()
	if idx, perr := chunk.ParseIndex(out); err != nil || perr != nil || hex.EncodeToString(idx.SHA256[:]) != res.SHA256 {
		t.Errorf("slot A's index on the data partition: %v, %v", err, perr)
	}
	// Slot A holds the image byte for byte.
	f, _ := os.Open(disk)
	defer f.Close()
	want, _ := os.ReadFile(img)
	got := make([]byte, len(want))
	f.ReadAt(got, l.A.Start)
	if !bytes.Equal(got, want) {
		t.Error("slot A differs from the image")
	}
	if img, err := image.ReadSlot(f, l.A.Start, int64(len(want))); err != nil || img.Version != "1.0.0" {
		t.Errorf("version in slot A = %q, %v", img.Version, err)
	}
	d, err := bootstate.OpenDisk(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if st, err := d.Load(); err != nil || st != bootstate.Initial() {
		t.Errorf("boot state = %+v, %v; want %+v", st, err, bootstate.Initial())
	}
	cfgText, err := grub.ReadFile(f, l.ESP.Start, l.ESP.Size, grub.CfgPath)
	if err != nil || !bytes.Contains(cfgText, []byte("twinroot.slot=$1")) {
		t.Errorf("grub.cfg on the ESP: %v\n%s", err, cfgText)
	}
	mbr := make([]byte, 512)
	f.ReadAt(mbr, 0)
	if mbr[510] != 0x55 || mbr[511] != 0xaa || bytes.Equal(mbr[:0x1b8], make([]byte, 0x1b8)) {
		t.Error("no boot code in the MBR")
	}
}

// TestInstallRefuses checks every refusal leaves the disk byte for byte as
// it was.
func TestInstallRefuses(t *testing.T) {
	g := grubDir(t)
	small := squashfs(t, "1.0.0", 1<<20)
	big := squashfs(t, "1.0.0", slotSize+(1<<20))
	junk := filepath.Join(t.TempDir(), "junk.img")
	os.WriteFile(junk, bytes.Repeat([]byte("not a squashfs"), 1000), 0o644)
	installed := newDisk(t, partition.MinDiskSize(slotSize))
	if _, err := Install(context.Background(), Options{Disk: installed, Image: small, GrubDir: g, SlotSize: slotSize}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		disk    string
		image   string
		want    error
		wantMsg string
	}{
		{"image larger than the slot", newDisk(t, partition.MinDiskSize(slotSize)), big, refusal.ErrDoesNotFit, "slot is 32 MiB"},
		{"disk too small", newDisk(t, partition.MinDiskSize(slotSize)-partition.MiB), small, partition.ErrDiskTooSmall, "need at least"},
		{"disk holds twinroot data", installed, small, partition.ErrHoldsData, installed},
		{"not a squashfs", newDisk(t, partition.MinDiskSize(slotSize)), junk, image.ErrNotSquashfs, "bad magic"},
		{"image missing", newDisk(t, partition.MinDiskSize(slotSize)), filepath.Join(t.TempDir(), "nope.img"), os.ErrNotExist, "no such file"},
		{"disk missing", filepath.Join(t.TempDir(), "nodisk.img"), small, ErrDiskMissing, "truncate -s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before string
			if _, err := os.Stat(tc.disk); err == nil {
				before = testenv.FileSHA256(t, tc.disk)
			}
			_, err := Install(context.Background(), Options{Disk: tc.disk, Image: tc.image, GrubDir: g, SlotSize: slotSize})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("Install = %v, want %v mentioning %q", err, tc.want, tc.wantMsg)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			t.Logf("error: %v", err)
			if before != "" && testenv.FileSHA256(t, tc.disk) != before {
				t.Error("the disk changed")
			}
		})
	}
	// With --wipe-data the installed disk is taken.
	if _, err := Install(context.Background(), Options{Disk: installed, Image: small, GrubDir: g, SlotSize: slotSize, WipeData: true}); err != nil {
		t.Errorf("Install --wipe-data: %v", err)
	}
}

// A medium that carries slot.img without slot.img.zst (the installer ISO)
// and whose slot.img differs from the signed index is refused as such.
func TestInstallTamperedMedium(t *testing.T) {
	ctx := context.Background()
	k, pub := testrelease.Key(t)
	dir := testrelease.Small(t, pub, "1.0.0", 1, 1<<20, "")
	if _, _, err := release.SignDir(ctx, dir, "stable", time.Now(), time.Hour, k); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, release.ObjectFile))
	f, _ := os.OpenFile(filepath.Join(dir, release.SlotFile), os.O_RDWR, 0)
	f.WriteAt([]byte{0xff, 0x00, 0xff}, 600<<10)
	f.Close()
	disk := newDisk(t, partition.MinDiskSize(slotSize))
	_, err := Install(ctx, Options{Disk: disk, Image: dir, GrubDir: grubDir(t), SlotSize: slotSize})
	if !errors.Is(err, refusal.ErrMismatch) || !strings.Contains(err.Error(), "SHA-256") || cli.ExitCode(err) != cli.ExitRefused {
		t.Fatalf("Install = %v, want a refusal naming the SHA-256 that differs", err)
	}
	t.Logf("refused: %v", err)
}
