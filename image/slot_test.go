package image

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func mksquashfs(t *testing.T, comp string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	for name, data := range map[string]string{"etc/twinroot/version": "1.2.3\n", "boot/vmlinuz": "kernel", "boot/initrd.img": "initrd"} {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(t.TempDir(), "slot.img")
	out, err := exec.Command("mksquashfs", root, img, "-comp", comp, "-noappend", "-all-root", "-quiet").CombinedOutput()
	if err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
	return img
}

func TestOpen(t *testing.T) {
	for _, comp := range []string{"xz", "gzip"} {
		t.Run(comp, func(t *testing.T) {
			img := mksquashfs(t, comp)
			f, info, err := Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fi, _ := os.Stat(img)
			if info.Size != fi.Size() || info.Compression != comp || info.Version != "1.2.3" {
				t.Errorf("Open = %+v, want size %d, %s, version 1.2.3", info, fi.Size(), comp)
			}
			// A build output directory works the same.
			f2, info2, err := Open(filepath.Dir(img))
			if err != nil || info2 != info {
				t.Errorf("Open(dir) = %+v, %v", info2, err)
			}
			f2.Close()
		})
	}
}

func TestOpenRefuses(t *testing.T) {
	junk := filepath.Join(t.TempDir(), "junk.img")
	os.WriteFile(junk, make([]byte, 8192), 0o644)
	if _, _, err := Open(junk); !errors.Is(err, ErrNotSquashfs) {
		t.Errorf("Open(zeros) = %v, want ErrNotSquashfs", err)
	}
	if _, _, err := Open(filepath.Join(t.TempDir(), "missing.img")); err == nil {
		t.Error("Open(missing) succeeded")
	}
	short := filepath.Join(t.TempDir(), "short.img")
	os.WriteFile(short, []byte("hsqs"), 0o644)
	if _, _, err := Open(short); !errors.Is(err, ErrNotSquashfs) {
		t.Errorf("Open(short) = %v, want ErrNotSquashfs", err)
	}
	if _, _, err := Open(mksquashfs(t, "zstd")); !errors.Is(err, ErrNotSquashfs) {
		t.Errorf("Open(zstd) = %v, want ErrNotSquashfs", err)
	}
}
