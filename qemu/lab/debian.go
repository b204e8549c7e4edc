package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"

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
		// One debootstrap for all releases building at once.
		l.debianMu.Lock()
		log := l.DebianLog
		if log == nil {
			log = io.Discard
		}
		base, err := debian.BuildBase(ctx, l.DebianCache, log)
		l.debianMu.Unlock()
		if err != nil {
			return "", err
		}
		if err := debian.Assemble(ctx, base, l.Updater, root); err != nil {
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

// EmptyDebianDisk makes (or empties) a sparse disk file at path sized for
// the Debian reference system: two slots of DebianSlotSize and a data
// partition of 1 GiB.
func EmptyDebianDisk(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = f.Truncate(partition.MinDiskSize(DebianSlotSize) + debianData)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("create disk %s: %w", path, err)
	}
	return nil
}

// InstallDebian makes a disk file at disk with EmptyDebianDisk and
// installs the release in dir on it with the device config file
// deviceYAML.
func (l *Lab) InstallDebian(ctx context.Context, disk, dir, deviceYAML string) error {
	if err := EmptyDebianDisk(disk); err != nil {
		return err
	}
	_, err := install.Install(ctx, install.Options{Disk: disk, Image: installable(dir), GrubDir: l.GrubDir, SlotSize: DebianSlotSize, Config: deviceYAML})
	if err != nil {
		return fmt.Errorf("install %s on %s: %w", filepath.Base(dir), disk, err)
	}
	return nil
}

// Bundle reads the services' bundle.json from the slot image of the
// release build in dir.
func Bundle(dir string) (*containers.Bundle, error) {
	name := strings.TrimPrefix(path.Join(containers.BundleDir, containers.BundleFile), "/")
	out, err := exec.Command("unsquashfs", "-cat", filepath.Join(dir, release.SlotFile), name).Output()
	if err != nil {
		return nil, fmt.Errorf("read /%s of %s: %w", name, dir, err)
	}
	var b containers.Bundle
	if err := json.Unmarshal(out, &b); err != nil {
		return nil, fmt.Errorf("/%s of %s: %w", name, dir, err)
	}
	return &b, nil
}

// Delta is what an update from one release to the next cost on the wire,
// beside what changed.
type Delta struct {
	Fetched int64    // bytes the device fetched
	Object  int64    // the size of the new release's object (slot.img.zst)
	Layers  []string // the image layers the new release has and the old lacks
	Gzipped int64    // their sizes gzipped: what a registry pull would fetch
}

// Percent is Fetched as a share of Object.
func (d Delta) Percent() float64 { return 100 * float64(d.Fetched) / float64(d.Object) }

// DeltaOf tells what the update from the release build oldDir to newDir
// changed, for fetched bytes on the wire.
func DeltaOf(oldDir, newDir string, fetched int64) (Delta, error) {
	d := Delta{Fetched: fetched}
	fi, err := os.Stat(filepath.Join(newDir, release.ObjectFile))
	if err != nil {
		return d, err
	}
	d.Object = fi.Size()
	old, err := Bundle(oldDir)
	if err != nil {
		return d, err
	}
	next, err := Bundle(newDir)
	if err != nil {
		return d, err
	}
	have := map[string]bool{}
	for _, s := range old.Services {
		for _, l := range s.Layers {
			have[l.DiffID] = true
		}
	}
	for _, s := range next.Services {
		for _, l := range s.Layers {
			if !have[l.DiffID] {
				d.Gzipped += l.Gzipped
				d.Layers = append(d.Layers, s.Name+" "+l.DiffID[:19])
				have[l.DiffID] = true
			}
		}
	}
	return d, nil
}
