package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for n, data := range files {
		p := filepath.Join(root, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

var bootFiles = map[string]string{"boot/vmlinuz": "kernel", "boot/initrd.img": "initrd", "etc/hostname": "box"}

func unsquashCat(t *testing.T, img, file string) string {
	t.Helper()
	out, err := exec.Command("unsquashfs", "-cat", img, file).CombinedOutput()
	if err != nil {
		t.Fatalf("unsquashfs -cat %s: %v: %s", file, err, out)
	}
	return string(out)
}

func TestBuildRootfs(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	writeTree(t, root, bootFiles)
	key := filepath.Join(t.TempDir(), "release.pub")
	os.WriteFile(key, []byte("public key bytes\n"), 0o644)
	var imgs []string
	for i := 0; i < 2; i++ {
		out := filepath.Join(t.TempDir(), "slot.img")
		info, err := Build(context.Background(), BuildOptions{Rootfs: root, Trust: []string{key}, Version: "1.4.0", Serial: 14, Out: out})
		if err != nil {
			t.Fatal(err)
		}
		if info.Version != "1.4.0" || info.Compression != "xz" {
			t.Errorf("info = %+v", info)
		}
		imgs = append(imgs, out)
	}
	a, _ := os.ReadFile(imgs[0])
	b, _ := os.ReadFile(imgs[1])
	if !bytes.Equal(a, b) {
		t.Error("two builds of the same root differ")
	}
	if got := unsquashCat(t, imgs[0], "usr/lib/twinroot/trusted/release.pub"); got != "public key bytes\n" {
		t.Errorf("baked key = %q", got)
	}
	if got := unsquashCat(t, imgs[0], "etc/twinroot/serial"); got != "14\n" {
		t.Errorf("serial = %q", got)
	}
	// The root directory itself is untouched.
	if _, err := os.Stat(filepath.Join(root, "usr")); !os.IsNotExist(err) {
		t.Errorf("build changed the root: %v", err)
	}
}

func TestBuildRefuses(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	writeTree(t, root, map[string]string{"boot/vmlinuz": "kernel"})
	_, err := Build(context.Background(), BuildOptions{Rootfs: root, Version: "1.0.0", Out: filepath.Join(t.TempDir(), "x.img")})
	if !errors.Is(err, ErrNoKernel) || !strings.Contains(err.Error(), "initrd.img") {
		t.Errorf("Build without initrd = %v, want ErrNoKernel naming it", err)
	}
	writeTree(t, root, map[string]string{"boot/initrd.img": "i", "etc/twinroot/version": "0.9.0\n"})
	if _, err := Build(context.Background(), BuildOptions{Rootfs: root, Version: "1.0.0", Out: filepath.Join(t.TempDir(), "x.img")}); err == nil || !strings.Contains(err.Error(), "/etc/twinroot/version") {
		t.Errorf("Build over a different version file = %v", err)
	}
	if _, err := Build(context.Background(), BuildOptions{Rootfs: root, Version: "1.0.0", Compression: "zstd", Out: filepath.Join(t.TempDir(), "x.img")}); err == nil {
		t.Error("zstd accepted")
	}
}

// layerTar makes an image layer holding files and a whiteout of gone.
func layerTar(t *testing.T, files map[string]string, whiteouts ...string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range sortedKeys(files) {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg, Uid: 1000, Gid: 1000})
		tw.Write([]byte(files[n]))
	}
	for _, w := range whiteouts {
		tw.WriteHeader(&tar.Header{Name: filepath.Join(filepath.Dir(w), ".wh."+filepath.Base(w)), Typeflag: tar.TypeReg})
	}
	tw.Close()
	return buf.Bytes()
}

func sortedKeys(m map[string]string) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	for i := range k {
		for j := i + 1; j < len(k); j++ {
			if k[j] < k[i] {
				k[i], k[j] = k[j], k[i]
			}
		}
	}
	return k
}

func TestBuildOCI(t *testing.T) {
	l1, err := tarball.LayerFromReader(bytes.NewReader(layerTar(t, map[string]string{"boot/vmlinuz": "kernel", "boot/initrd.img": "initrd", "etc/old": "x"})))
	if err != nil {
		t.Fatal(err)
	}
	l2, err := tarball.LayerFromReader(bytes.NewReader(layerTar(t, map[string]string{"etc/app.conf": "v2"}, "etc/old")))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l1, l2)
	if err != nil {
		t.Fatal(err)
	}
	docker := filepath.Join(t.TempDir(), "os.tar")
	if err := tarball.WriteToFile(docker, name.MustParseReference("localhost/os:1"), img); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	ociTar := filepath.Join(t.TempDir(), "os-oci.tar")
	if out, err := exec.Command("tar", "-C", dir, "-cf", ociTar, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	for kind, archive := range map[string]string{"docker": docker, "oci": ociTar} {
		t.Run(kind, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "slot.img")
			if _, err := Build(context.Background(), BuildOptions{OCI: archive, Version: "2.0.0", Serial: 2, Out: out}); err != nil {
				t.Fatal(err)
			}
			if got := unsquashCat(t, out, "etc/app.conf"); got != "v2" {
				t.Errorf("etc/app.conf = %q", got)
			}
			list, _ := exec.Command("unsquashfs", "-lln", out).CombinedOutput()
			if strings.Contains(string(list), "etc/old") {
				t.Error("a whited-out file is in the image")
			}
			if !strings.Contains(string(list), "1000/1000") {
				t.Errorf("owners not kept:\n%s", list)
			}
		})
	}
}

func TestReadBakedFiles(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	writeTree(t, root, bootFiles)
	k1, k2 := filepath.Join(t.TempDir(), "a.pub"), filepath.Join(t.TempDir(), "b.pub")
	os.WriteFile(k1, []byte("A"), 0o644)
	os.WriteFile(k2, []byte("B"), 0o644)
	out := filepath.Join(t.TempDir(), "slot.img")
	info, err := Build(context.Background(), BuildOptions{Rootfs: root, Trust: []string{k1, k2}, Version: "3.0.0", Serial: 30, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(out)
	defer f.Close()
	img, err := OpenFiles(f, 0, info.Size)
	if err != nil {
		t.Fatal(err)
	}
	files, err := img.DirFiles(TrustedDir)
	if err != nil || len(files) != 2 || string(files["a.pub"]) != "A" || string(files["b.pub"]) != "B" {
		t.Errorf("DirFiles = %v, %v", files, err)
	}
	if n, err := img.Serial(); err != nil || n != 30 {
		t.Errorf("Serial = %d, %v", n, err)
	}
	if files, err := img.DirFiles("/no/such"); err != nil || len(files) != 0 {
		t.Errorf("DirFiles(missing) = %v, %v", files, err)
	}
	if _, err := ReadSlot(f, 0, info.Size); err == nil {
		t.Error("ReadSlot of an image trusting two malformed keys succeeded")
	}
}
