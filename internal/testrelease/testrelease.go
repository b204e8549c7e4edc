// Package testrelease builds the small releases tests write into slots:
// a root holding a kernel of random bytes and an initrd, built by
// release.Build with a release key trusted, as `updater build` does.
package testrelease

import (
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/twinroot/twinroot/image"
	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/release"
)

// Key makes a release key and saves it; pub is the public key file.
func Key(t testing.TB) (k *keys.PrivateKey, pub string) {
	t.Helper()
	k, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, pub, err = keys.Save(filepath.Join(t.TempDir(), "release"), k)
	if err != nil {
		t.Fatal(err)
	}
	return k, pub
}

// Root writes a root whose /boot/vmlinuz is kernel random bytes drawn
// from seed and whose /boot/initrd.img names initrd.
func Root(t testing.TB, kernel int, seed int64, initrd string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	if err := os.MkdirAll(filepath.Join(root, "boot"), 0o755); err != nil {
		t.Fatal(err)
	}
	blob := make([]byte, kernel)
	rand.New(rand.NewSource(seed)).Read(blob)
	if err := os.WriteFile(filepath.Join(root, "boot/vmlinuz"), blob, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "boot/initrd.img"), []byte(initrd), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// Build builds root into a new release directory trusting pub;
// compression "" is updater build's default.
func Build(t testing.TB, root, pub, version string, serial uint64, compression string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "v"+version)
	_, err := release.Build(context.Background(), release.BuildOptions{
		Image: image.BuildOptions{Rootfs: root, Trust: []string{pub}, Version: version, Serial: serial, Compression: compression},
		Out:   dir,
	})
	if err != nil {
		t.Fatalf("build %s: %v", version, err)
	}
	return dir
}

// Small builds a release whose kernel is kernel random bytes drawn from
// the serial, so two serials share no chunk.
func Small(t testing.TB, pub, version string, serial uint64, kernel int, compression string) string {
	t.Helper()
	return Build(t, Root(t, kernel, int64(serial), version), pub, version, serial, compression)
}
