package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twinroot/twinroot/image"
	"github.com/twinroot/twinroot/internal/cli"
	"github.com/twinroot/twinroot/internal/grub"
	"github.com/twinroot/twinroot/internal/partition"
)

// TestInstallRefusesInstalledDisk runs installer install twice on one disk
// image: the second run is refused with exit code 3, names the flag that
// overrides it, and leaves the disk's bytes as they were.
func TestInstallRefusesInstalledDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("builds GRUB images and a slot image")
	}
	ctx := context.Background()
	dir := t.TempDir()
	grubDir := filepath.Join(dir, "grub")
	if err := grub.BuildImages(ctx, grubDir); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	for name, body := range map[string]string{"boot/vmlinuz": "kernel", "boot/initrd.img": "initrd"} {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "slot.img")
	if _, err := image.Build(ctx, image.BuildOptions{Rootfs: root, Version: "1.0.0", Serial: 1, Compression: "gzip", Out: img}); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, partition.MinDiskSize(32*partition.MiB)); err != nil {
		t.Fatal(err)
	}
	install := func() error {
		root := newRootCmd()
		root.SetArgs([]string{"install", "--disk", disk, "--image", img, "--grub-dir", grubDir, "--slot-size", "32M"})
		root.SetOut(&bytes.Buffer{})
		return root.ExecuteContext(ctx)
	}
	if err := install(); err != nil {
		t.Fatalf("first install: %v", err)
	}
	before, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	err = install()
	if !errors.Is(err, partition.ErrHoldsData) || cli.ExitCode(err) != cli.ExitRefused || !strings.HasSuffix(err.Error(), "use --wipe-data to erase it") {
		t.Fatalf("second install: %v (exit %d), want a refusal (exit %d) naming --wipe-data", err, cli.ExitCode(err), cli.ExitRefused)
	}
	if after, err := os.ReadFile(disk); err != nil || !bytes.Equal(before, after) {
		t.Errorf("the refused install changed the disk (read error %v)", err)
	}
}
