package grub

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
)

// instEnvBlock is a 1024-byte GRUB environment block, written by hand so the
// tests of this file do not depend on the env codec.
func instEnvBlock(vars ...string) []byte {
	b := []byte("# GRUB Environment Block\n")
	for _, v := range vars {
		b = append(b, v+"\n"...)
	}
	return append(b, bytes.Repeat([]byte("#"), 1024-len(b))...)
}

func instMakeESP(t *testing.T, l instLayout, files []File) {
	t.Helper()
	f, err := os.OpenFile(l.path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := MakeESP(f, l.espStart, l.espSize, files); err != nil {
		t.Fatal(err)
	}
}

// instFsck runs fsck.fat -n on the ESP, copied out of the disk.
func instFsck(t *testing.T, l instLayout) {
	t.Helper()
	part := filepath.Join(t.TempDir(), "esp.img")
	instRun(t, "dd", "if="+l.path, "of="+part, "bs=1M", "conv=sparse", "status=none",
		fmt.Sprintf("skip=%d", l.espStart/mib), fmt.Sprintf("count=%d", l.espSize/mib))
	if _, err := exec.LookPath("fsck.fat"); err != nil {
		t.Fatalf("fsck.fat is not installed (Debian: dosfstools): %v", err)
	}
	out, err := exec.Command("fsck.fat", "-n", part).CombinedOutput()
	if err != nil {
		t.Errorf("fsck.fat -n: %v\n%s", err, out)
	}
}

// instMcopy reads a file from the ESP with mtools.
func instMcopy(t *testing.T, l instLayout, path string) []byte {
	t.Helper()
	if _, err := exec.LookPath("mcopy"); err != nil {
		t.Fatalf("mcopy is not installed (Debian: mtools): %v", err)
	}
	cmd := exec.Command("mcopy", "-n", "-i", fmt.Sprintf("%s@@%d", l.path, l.espStart), "::"+path, "-")
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mcopy %s: %v\n%s", path, err, stderr.String())
	}
	return out
}

func instESPFiles(img Images) []File {
	return []File{
		{Path: EFIBootFile, Data: img.EFI},
		{Path: PrefixDir + "/grub.cfg", Data: []byte("echo hello\n")},
		{Path: PrefixDir + "/grubenv", Data: instEnvBlock("twinroot_probe=seeded")},
		{Path: PrefixDir + "/grubenv.b", Data: instEnvBlock()},
		{Path: "/twinroot/a-rather-long-file-name.txt", Data: bytes.Repeat([]byte("twinroot\n"), 1000)},
		{Path: "/twinroot/empty", Data: nil},
	}
}

func TestMakeESP(t *testing.T) {
	img := instImages(t)
	l := instDisk(t)
	files := instESPFiles(img)
	instMakeESP(t, l, files)

	instFsck(t, l)
	if out := instRun(t, "sgdisk", "-v", l.path); !strings.Contains(out, "No problems found") {
		t.Errorf("sgdisk -v after MakeESP:\n%s", out)
	}
	for _, s := range []int64{0, 6} { // boot sector and its backup
		b := instReadAt(t, l.path, l.espStart+s*sectorSize, sectorSize)
		if got, want := binary.LittleEndian.Uint32(b[0x1c:]), uint32(l.espStart/sectorSize); got != want {
			t.Errorf("hidden sectors in boot sector %d = %d, want %d", s, got, want)
		}
	}
	cmd := exec.Command("mdir", "-i", fmt.Sprintf("%s@@%d", l.path, l.espStart), "::/")
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "Volume in drive : is TWINROOT") {
		t.Errorf("mdir ::/ = %v\n%s", err, out)
	}

	disk, err := os.OpenFile(l.path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	for _, f := range files {
		if got := instMcopy(t, l, f.Path); !bytes.Equal(got, f.Data) {
			t.Errorf("mcopy %s: %d bytes differing from the %d written", f.Path, len(got), len(f.Data))
		}
		got, err := ReadFile(disk, l.espStart, l.espSize, f.Path)
		if err != nil {
			t.Errorf("ReadFile: %v", err)
		} else if !bytes.Equal(got, f.Data) {
			t.Errorf("ReadFile(%s): %d bytes differing from the %d written", f.Path, len(got), len(f.Data))
		}
		off, size, err := LocateFile(disk, l.espStart, f.Path)
		if err != nil {
			t.Errorf("LocateFile: %v", err)
			continue
		}
		if size != int64(len(f.Data)) {
			t.Errorf("LocateFile(%s) size = %d, want %d", f.Path, size, len(f.Data))
		}
		if size == 0 {
			continue
		}
		if off < l.espStart || off+size > l.espStart+l.espSize {
			t.Errorf("LocateFile(%s) = [%d, %d), outside the ESP", f.Path, off, off+size)
			continue
		}
		if got := instReadAt(t, l.path, off, size); !bytes.Equal(got, f.Data) {
			t.Errorf("bytes at LocateFile(%s) = %d differ from the file", f.Path, off)
		}
	}
	if _, _, err := LocateFile(disk, l.espStart, "/boot/grub/missing"); err == nil {
		t.Errorf("LocateFile of a missing file succeeded")
	}
	if _, _, err := LocateFile(disk, l.espStart, "/boot/grub"); err == nil {
		t.Errorf("LocateFile of a directory succeeded")
	}

	// The boot state is rewritten in place at the located offset.
	off, size, err := LocateFile(disk, l.espStart, "/boot/grub/grubenv")
	if err != nil {
		t.Fatal(err)
	}
	env := instEnvBlock("twinroot_probe=rewritten")
	if int64(len(env)) != size {
		t.Fatalf("grubenv is %d bytes, want %d", size, len(env))
	}
	if _, err := disk.WriteAt(env, off); err != nil {
		t.Fatal(err)
	}
	if got := instMcopy(t, l, "/boot/grub/grubenv"); !bytes.Equal(got, env) {
		t.Errorf("mcopy grubenv after the in-place write:\n%s", got)
	}
	if got, err := ReadFile(disk, l.espStart, l.espSize, "/boot/grub/grubenv"); err != nil || !bytes.Equal(got, env) {
		t.Errorf("ReadFile grubenv after the in-place write = %q, %v", got, err)
	}
	instFsck(t, l)
}

func TestMakeESPReproducible(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	files := []File{
		{Path: PrefixDir + "/grub.cfg", Data: []byte("echo hello\n")},
		{Path: PrefixDir + "/grubenv", Data: instEnvBlock()},
	}
	var sums [2][sha256.Size]byte
	for i := range sums {
		l := instDisk(t)
		instMakeESP(t, l, files)
		sums[i] = sha256.Sum256(instReadAt(t, l.path, l.espStart, l.espSize))
	}
	if sums[0] != sums[1] {
		t.Errorf("two ESPs from the same files differ")
	}
}

// A directory that needs a new cluster for a file's entry splits that file
// in go-diskfs; finishFAT32 moves it.
func TestFinishFAT32(t *testing.T) {
	l := instDisk(t)
	disk, err := os.OpenFile(l.path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	fs, err := fat32.Create(file.New(disk, false), l.espSize, l.espStart, sectorSize, ESPLabel, true)
	if err != nil {
		t.Fatal(err)
	}
	var files []File
	for i := range 40 {
		f := File{
			Path: fmt.Sprintf("/many/file-with-a-long-name-%02d.txt", i),
			Data: bytes.Repeat([]byte{byte('a' + i%26)}, 1500+i),
		}
		files = append(files, f)
		if err := fs.Mkdir("/many"); err != nil {
			t.Fatal(err)
		}
		if err := writeESPFile(fs, f); err != nil {
			t.Fatal(err)
		}
	}
	var split []string
	for _, f := range files {
		if _, _, err := LocateFile(disk, l.espStart, f.Path); errors.Is(err, ErrNotContiguous) {
			split = append(split, f.Path)
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if len(split) == 0 {
		t.Fatal("go-diskfs wrote no split file: the test no longer covers moving files")
	}
	t.Logf("%d of %d files split by go-diskfs", len(split), len(files))
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path)
	}
	if err := finishFAT32(disk, l.espStart, paths); err != nil {
		t.Fatal(err)
	}
	instFsck(t, l)
	for _, f := range files {
		off, size, err := LocateFile(disk, l.espStart, f.Path)
		if err != nil {
			t.Errorf("after finishFAT32: %v", err)
			continue
		}
		if got := instReadAt(t, l.path, off, size); !bytes.Equal(got, f.Data) {
			t.Errorf("bytes at LocateFile(%s) differ from the file", f.Path)
		}
		if got := instMcopy(t, l, f.Path); !bytes.Equal(got, f.Data) {
			t.Errorf("mcopy %s differs from the file", f.Path)
		}
	}
}

func TestMakeESPRejects(t *testing.T) {
	l := instDisk(t)
	disk, err := os.OpenFile(l.path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	for _, files := range [][]File{
		{{Path: "relative/file"}},
		{{Path: "/a/../b"}},
		{{Path: "/a"}, {Path: "/a"}},
	} {
		if err := MakeESP(disk, l.espStart, l.espSize, files); err == nil {
			t.Errorf("MakeESP(%v) succeeded", files)
		}
	}
	// go-diskfs v1.9.4 makes too small a FAT at 64 MiB (fsck.fat: "Filesystem
	// has 129024 clusters but only space for 129022 FAT entries").
	err = MakeESP(disk, l.espStart, 64*mib, []File{{Path: "/a", Data: []byte("a")}})
	if err == nil {
		t.Errorf("MakeESP of 64 MiB succeeded")
	}
	t.Logf("64 MiB: %v", err)
}
