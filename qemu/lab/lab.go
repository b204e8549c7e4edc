// Package lab prepares what the QEMU scenarios and the demo boot: the
// updater built for the guest, minimal reference images by version and
// variant (built once and cached), signed releases of them for a store
// (Release, Publish: a signing key generated once per Lab, its public half
// baked into every release, or a key pair given with UseKey), disks with
// twinroot installed (Install, InstallRelease with a device config),
// installer ISOs of a signed release (BuildISO), and offline operations on
// them between boots.
package lab

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"

	"github.com/twinroot/twinroot/image/examples/minimal"
	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/engine"
	"github.com/twinroot/twinroot/internal/install"
	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/manifest"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/release"
)

// SlotSize of the disks a Lab installs: the minimal image is about 17 MB.
const SlotSize = 64 * partition.MiB

// Lab builds and caches images under Dir.
type Lab struct {
	Dir       string
	KernelDir string
	GrubDir   string
	Updater   string // static updater binary for the guest
	// DebianCache holds the Debian reference system's base roots
	// (build/debian); see package debian.
	DebianCache string
	DebianLog   io.Writer // progress of a base root build; nil for none
	debianMu    sync.Mutex

	mu       sync.Mutex
	images   map[string]string
	releases map[string]*releaseBuild

	keyOnce sync.Once
	key     *keys.PrivateKey
	keyPub  string
	keyErr  error

	initOnce sync.Once
	initBin  string
	initErr  error

	installerOnce sync.Once
	installerBin  string
	installerErr  error
}

// New returns a Lab working in dir; it builds the updater for the guest
// when updater is "".
func New(ctx context.Context, dir, kernelDir, grubDir, updater string) (*Lab, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(kernelDir, "vmlinuz")); err != nil {
		return nil, fmt.Errorf("no kernel in %s: run `make kernel`", kernelDir)
	}
	if _, err := os.Stat(filepath.Join(grubDir, "core.img")); err != nil {
		return nil, fmt.Errorf("no GRUB images in %s: run `make grub`", grubDir)
	}
	if updater == "" {
		updater = filepath.Join(dir, "updater")
		if err := buildStatic(ctx, "updater", updater); err != nil {
			return nil, err
		}
	}
	return &Lab{Dir: dir, KernelDir: kernelDir, GrubDir: grubDir, Updater: updater, images: map[string]string{}}, nil
}

// buildStatic builds the project's command cmd/name as a static binary at
// out, as `make bins` does: guests and initramfs images have no C library.
func buildStatic(ctx context.Context, name, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, "github.com/twinroot/twinroot/cmd/"+name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %v\n%s", name, err, b)
	}
	return nil
}

// Image returns the slot image of the minimal system at version with the
// given variant, building it the first time.
func (l *Lab) Image(ctx context.Context, version string, variant minimal.Variant) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := version + "-" + string(variant)
	if p, ok := l.images[key]; ok {
		return p, nil
	}
	p := filepath.Join(l.Dir, "minimal-"+key+".img")
	err := minimal.Build(ctx, minimal.Options{KernelDir: l.KernelDir, Updater: l.Updater, Version: version, Variant: variant}, p)
	if err != nil {
		return "", fmt.Errorf("build image %s: %w", key, err)
	}
	l.images[key] = p
	return p, nil
}

// Install makes a sparse disk file at path and installs version (variant
// ok) on it.
func (l *Lab) Install(ctx context.Context, path, version string) error {
	img, err := l.Image(ctx, version, minimal.OK)
	if err != nil {
		return err
	}
	if err := EmptyDisk(path); err != nil {
		return err
	}
	_, err = install.Install(ctx, install.Options{Disk: path, Image: img, GrubDir: l.GrubDir, SlotSize: SlotSize})
	return err
}

// EmptyDisk makes (or empties) a sparse disk file at path of the size the
// lab's disks have: the smallest that holds its layout.
func EmptyDisk(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = f.Truncate(partition.MinDiskSize(SlotSize))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("create disk %s: %w", path, err)
	}
	return nil
}

// Stage writes version/variant into the slot that is not running on the
// disk file and arms it for tries trial boots, through the slot engine as
// `updater apply --from` does: the release is built and signed by the
// lab's key (serial from the version: major*10000 + minor*100 + patch),
// and every chunk is checked against its signed index.
func (l *Lab) Stage(ctx context.Context, disk string, running partition.Slot, version string, variant minimal.Variant, tries int) (bootstate.State, error) {
	dir, err := l.SignedRelease(ctx, version, serialOf(version), variant)
	if err != nil {
		return bootstate.State{}, err
	}
	rel, _, err := release.OpenDir(ctx, dir)
	if err != nil {
		return bootstate.State{}, err
	}
	img, err := os.Open(filepath.Join(dir, release.SlotFile))
	if err != nil {
		return bootstate.State{}, err
	}
	defer img.Close()
	d, err := bootstate.OpenDisk(disk)
	if err != nil {
		return bootstate.State{}, err
	}
	defer d.Close()
	target := running.Other()
	boot := &engine.Trial{Disk: d, Target: target, Running: running, Tries: tries}
	w := engine.Write{Release: rel, Disk: d.File, Slot: target, Part: d.Layout.Slot(target),
		Local: img, LocalSize: rel.Manifest.Image.Size, LocalIndex: rel.Index, Boot: boot}
	if _, err := w.Run(ctx); err != nil {
		return bootstate.State{}, err
	}
	return boot.State, nil
}

// serialOf is the serial Stage gives a version.
func serialOf(version string) uint64 {
	v, err := manifest.ParseVersion(version)
	if err != nil {
		return 1
	}
	return v.Major*10000 + v.Minor*100 + v.Patch
}

// installable is what install.Install takes for a release directory: the
// directory itself once signed, else its bare slot image.
func installable(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, release.ManifestFile))
	if err == nil && manifest.IsSigned(b) {
		return dir
	}
	return filepath.Join(dir, release.SlotFile)
}

// State reads the boot state of a disk file.
func State(disk string) (bootstate.State, error) {
	d, err := bootstate.OpenDisk(disk)
	if err != nil {
		return bootstate.State{}, err
	}
	defer d.Close()
	return d.Load()
}
