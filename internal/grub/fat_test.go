package grub

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLocateFile feeds damaged file systems to the FAT reader: it reads the
// ESP of any disk `installer inspect` is pointed at.
func FuzzLocateFile(f *testing.F) {
	path := filepath.Join(f.TempDir(), "esp.img")
	disk, err := os.Create(path)
	if err != nil {
		f.Fatal(err)
	}
	const size = 64 << 10
	if err := disk.Truncate(size + sectorSize); err != nil {
		f.Fatal(err)
	}
	err = MakeESP(disk, sectorSize, size, []File{
		{Path: PrefixDir + "/grubenv", Data: instEnvBlock("a=b")},
		{Path: "/EFI/BOOT/a-long-name.efi", Data: bytes.Repeat([]byte{1}, 3000)},
		{Path: "/empty"},
	})
	disk.Close()
	if err != nil {
		f.Fatal(err)
	}
	seed, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed[sectorSize:])
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		for _, p := range []string{PrefixDir + "/grubenv", "/EFI/BOOT/A-LONG-NAME.EFI", "/empty", "/EFI/.."} {
			off, size, err := LocateFile(r, 0, p)
			if err == nil && (off < 0 || size < 0) {
				t.Errorf("LocateFile(%s) = %d, %d", p, off, size)
			}
		}
	})
}
