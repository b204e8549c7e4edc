package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/twinroot/twinroot/image"
	"github.com/twinroot/twinroot/image/examples/debian"
	"github.com/twinroot/twinroot/image/examples/debian/services"
	"github.com/twinroot/twinroot/internal/containers"
	"github.com/twinroot/twinroot/internal/install"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/release"
)

// DebianSlotSize of the disks InstallDebian makes: the Debian reference
// image is a few hundred MB.
const DebianSlotSize = 1024 * partition.MiB

// debianData is the data partition of those disks: the journal and the
// containers' writable store live there.
const debianData = 1024 * partition.MiB

// BuildPodman is the build host's podman as updater build runs it here:
// the host has cgroups v1, which crun does not drive.
var BuildPodman = containers.Podman{Args: []string{"--runtime", "runc"}}

// DebianRelease returns the build output directory of the Debian reference
// system at version and serial, with the bundled services of svc (see
// package services), its root carrying the lab's public key as trusted;
// built the first time, then cached. The base root comes from DebianCache
// (debootstrap runs once per package list).
func (l *Lab) DebianRelease(ctx context.Context, version string, serial uint64, svc services.Options) (string, error) {
	key := "debian-" + version + "-" + strconv.FormatUint(serial, 10)
	if svc.Broken {
		key += "-broken"
	}
	return l.cachedRelease(ctx, key, func() (string, error) {
		_, pub, err := l.SigningKey()
		if err != nil {
			return "", err
		}
		work, err := os.MkdirTemp(l.Dir, key+"-")
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(work)
		root, bundle := filepath.Join(work, "root"), filepath.Join(work, "services")
		if err := debian.Build(ctx, debian.Options{Cache: l.DebianCache, Updater: l.Updater}, root); err != nil {
			return "", err
		}
		svc.Version = version
		if err := services.Write(bundle, svc); err != nil {
			return "", err
		}
		dir := filepath.Join(l.Dir, "release-"+key)
		if err := os.RemoveAll(dir); err != nil {
			return "", err
		}
		_, err = release.Build(ctx, release.BuildOptions{
			Image:      image.BuildOptions{Rootfs: root, Trust: []string{pub}, Version: version, Serial: serial},
			Out:        dir,
			Containers: bundle,
			Podman:     BuildPodman,
			Updater:    debian.Updater,
		})
		return dir, err
	})
}

// InstallDebian makes a sparse disk file at disk, sized for the Debian
// reference system, and installs the release in dir on it with the device
// config file deviceYAML.
func (l *Lab) InstallDebian(ctx context.Context, disk, dir, deviceYAML string) error {
	f, err := os.Create(disk)
	if err != nil {
		return err
	}
	err = f.Truncate(partition.MinDiskSize(DebianSlotSize) + debianData)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("create disk %s: %w", disk, err)
	}
	_, err = install.Install(ctx, install.Options{Disk: disk, Image: dir, GrubDir: l.GrubDir, SlotSize: DebianSlotSize, Config: deviceYAML})
	if err != nil {
		return fmt.Errorf("install %s on %s: %w", filepath.Base(dir), disk, err)
	}
	return nil
}
