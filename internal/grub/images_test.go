package grub

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twinroot/twinroot/internal/testenv"
)

// instImages builds the GRUB images into a temporary directory.
func instImages(t *testing.T) Images {
	t.Helper()
	testenv.Need(t, "grub-mkimage")
	dir := t.TempDir()
	if err := BuildImages(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	img, err := LoadImages(dir)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestBuildImages(t *testing.T) {
	img := instImages(t)

	boot, err := os.ReadFile("/usr/lib/grub/i386-pc/boot.img")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(img.BootImg, boot) {
		t.Errorf("boot.img differs from GRUB's")
	}
	// diskboot's blocklist as grub-mkimage leaves it: the rest of core.img
	// from sector 2 of the disk, loaded at segment 0x820.
	bl := img.CoreImg[blocklistStart:sectorSize]
	sectors := (len(img.CoreImg) + sectorSize - 1) / sectorSize
	if got, want := binary.LittleEndian.Uint16(bl[8:]), uint16(sectors-1); got != want {
		t.Errorf("core.img blocklist length = %d, want %d", got, want)
	}
	if got, want := binary.LittleEndian.Uint16(bl[10:]), uint16(0x820); got != want {
		t.Errorf("core.img blocklist segment = %#x, want %#x", got, want)
	}
	t.Logf("core.img: %d bytes (%d sectors), BOOTX64.EFI: %d bytes", len(img.CoreImg), sectors, len(img.EFI))
	if !bytes.HasPrefix(img.EFI, []byte("MZ")) {
		t.Errorf("BOOTX64.EFI is not a PE image")
	}
	// core.img is compressed; the EFI image shows its prefix as is.
	if !bytes.Contains(img.EFI, []byte(PrefixDir+"\x00")) {
		t.Errorf("BOOTX64.EFI does not embed the prefix %q", PrefixDir)
	}

	// Same inputs, same bytes.
	again := instImages(t)
	if !bytes.Equal(img.CoreImg, again.CoreImg) || !bytes.Equal(img.EFI, again.EFI) {
		t.Errorf("two builds of the GRUB images differ")
	}
}

func TestLoadImagesMissing(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{BootImgFile, CoreImgFile} {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, sectorSize), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err := LoadImages(dir)
	if err == nil {
		t.Fatal("LoadImages without BOOTX64.EFI succeeded")
	}
	msg := err.Error()
	if !strings.Contains(msg, filepath.Join(dir, EFIImgFile)) || !strings.Contains(msg, "run `make grub`") || strings.Contains(msg, "\n") {
		t.Errorf("LoadImages error = %q, want one line naming %s and saying run `make grub`", msg, EFIImgFile)
	}
}

func TestBuildImagesNoModules(t *testing.T) {
	testenv.Need(t, "grub-mkimage")
	err := Builder{LibDir: t.TempDir()}.Build(context.Background(), t.TempDir())
	if err == nil {
		t.Fatal("Build with an empty GRUB directory succeeded")
	}
	t.Logf("error: %v", err)
}
