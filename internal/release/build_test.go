package release

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/twinroot/twinroot/image"
	"github.com/twinroot/twinroot/internal/chunk"
	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/manifest"
)

func testRoot(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	os.MkdirAll(filepath.Join(root, "boot"), 0o755)
	os.MkdirAll(filepath.Join(root, "usr/share/doc"), 0o755)
	r := rand.New(rand.NewSource(1))
	blob := make([]byte, 4<<20)
	r.Read(blob)
	os.WriteFile(filepath.Join(root, "boot/vmlinuz"), blob, 0o644)
	os.WriteFile(filepath.Join(root, "boot/initrd.img"), blob[:1<<20], 0o644)
	os.WriteFile(filepath.Join(root, "usr/share/doc/README"), bytes.Repeat([]byte("twinroot "), 100000), 0o644)
	return root
}

func testKey(t *testing.T) string {
	t.Helper()
	k, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, pub, err := keys.Save(filepath.Join(t.TempDir(), "release"), k)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func TestBuildReproducible(t *testing.T) {
	root, pub := testRoot(t), testKey(t)
	var dirs []string
	for i := 0; i < 2; i++ {
		dir := filepath.Join(t.TempDir(), "out")
		r, err := Build(context.Background(), BuildOptions{Image: image.BuildOptions{Rootfs: root, Trust: []string{pub}, Version: "1.2.0", Serial: 12}, Out: dir})
		if err != nil {
			t.Fatal(err)
		}
		if r.Manifest.Version != "1.2.0" || r.Manifest.Serial != 12 || r.Chunks == 0 {
			t.Errorf("result = %+v", r)
		}
		dirs = append(dirs, dir)
	}
	for _, f := range []string{SlotFile, ObjectFile, IndexFile, ManifestFile} {
		a, _ := os.ReadFile(filepath.Join(dirs[0], f))
		b, _ := os.ReadFile(filepath.Join(dirs[1], f))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s differs between two builds (%d and %d bytes)", f, len(a), len(b))
		}
	}
	// The object and index describe the image, and the manifest the files.
	idxBytes, _ := os.ReadFile(filepath.Join(dirs[0], IndexFile))
	idx, err := chunk.ParseIndex(idxBytes)
	if err != nil {
		t.Fatal(err)
	}
	zst, _ := os.Open(filepath.Join(dirs[0], ObjectFile))
	defer zst.Close()
	raw, _ := os.Open(filepath.Join(dirs[0], SlotFile))
	defer raw.Close()
	if err := chunk.VerifyObject(context.Background(), idx, zst, raw); err != nil {
		t.Errorf("VerifyObject: %v", err)
	}
	mb, _ := os.ReadFile(filepath.Join(dirs[0], ManifestFile))
	m, err := manifest.Decode(mb)
	if err != nil {
		t.Fatal(err)
	}
	raw.Seek(0, 0)
	if err := m.CheckImage(raw); err != nil {
		t.Errorf("manifest image: %v", err)
	}
	if err := m.CheckIndex(bytes.NewReader(idxBytes)); err != nil {
		t.Errorf("manifest index: %v", err)
	}
}

func TestBuildRefuses(t *testing.T) {
	root, pub := testRoot(t), testKey(t)
	for name, o := range map[string]image.BuildOptions{
		"no trusted key": {Rootfs: root, Version: "1.0.0", Serial: 1},
		"bad version":    {Rootfs: root, Trust: []string{pub}, Version: "one", Serial: 1},
		"zero serial":    {Rootfs: root, Trust: []string{pub}, Version: "1.0.0"},
		"missing key":    {Rootfs: root, Trust: []string{pub + ".nope"}, Version: "1.0.0", Serial: 1},
	} {
		dir := filepath.Join(t.TempDir(), "out")
		if _, err := Build(context.Background(), BuildOptions{Image: o, Out: dir}); err == nil {
			t.Errorf("%s: Build succeeded", name)
		}
	}
	empty := filepath.Join(t.TempDir(), "empty")
	os.MkdirAll(empty, 0o755)
	_, err := Build(context.Background(), BuildOptions{Image: image.BuildOptions{Rootfs: empty, Trust: []string{pub}, Version: "1.0.0", Serial: 1}, Out: filepath.Join(t.TempDir(), "o")})
	if !errors.Is(err, image.ErrNoKernel) {
		t.Errorf("Build of a root without a kernel = %v", err)
	}
}
