package release

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/minio/sha256-simd"

	"github.com/twinroot/twinroot/image"
	"github.com/twinroot/twinroot/internal/chunk"
	"github.com/twinroot/twinroot/internal/containers"
	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/manifest"
)

// Names of the files in a build output directory.
const (
	SlotFile     = "slot.img"
	ObjectFile   = manifest.ImageObject
	IndexFile    = manifest.IndexObject
	ManifestFile = manifest.File
)

// BuildOptions of a release build.
type BuildOptions struct {
	Image     image.BuildOptions // Out is set by Build
	MinSerial uint64
	Out       string // the output directory
	// Containers is a bundle directory (compose.yaml and image archives)
	// whose services are baked into the image; see package containers.
	Containers string
	Podman     containers.Podman
	// Updater is the updater's path inside the root, which renders the
	// services' env files; default /usr/bin/updater.
	Updater string
}

// BuildResult reports a build.
type BuildResult struct {
	Dir      string             `json:"dir"`
	Manifest *manifest.Manifest `json:"manifest"`
	Chunks   int                `json:"chunks"`
	Duration time.Duration      `json:"duration_ns"`
}

// Build makes the output directory: the slot image, its chunked zstd
// object, the index and the unsigned manifest.
func Build(ctx context.Context, o BuildOptions) (BuildResult, error) {
	start := time.Now()
	if _, err := manifest.ParseVersion(o.Image.Version); err != nil {
		return BuildResult{}, err
	}
	if o.Image.Serial == 0 {
		return BuildResult{}, fmt.Errorf("%w: serial must be at least 1", manifest.ErrMalformed)
	}
	if len(o.Image.Trust) == 0 {
		return BuildResult{}, fmt.Errorf("%w: give at least one --trust key, or devices could not verify the next release", keys.ErrNoTrustedKeys)
	}
	for _, k := range o.Image.Trust {
		if _, err := keys.LoadPublic(k); err != nil {
			return BuildResult{}, fmt.Errorf("trusted key %s: %w", k, err)
		}
	}
	var bundle []manifest.Container
	if o.Containers != "" {
		// The bundle is checked and its images found before anything is
		// written, so a refused bundle leaves the output as it was.
		b, err := containers.Load(ctx, o.Containers)
		if err != nil {
			return BuildResult{}, err
		}
		p, err := b.Prepare(ctx, o.Podman)
		if err != nil {
			return BuildResult{}, err
		}
		defer p.Close()
		stage, cleanup, err := stageRoot(ctx, o.Image, o.Out)
		if err != nil {
			return BuildResult{}, err
		}
		defer cleanup()
		if o.Updater == "" {
			o.Updater = "/usr/bin/updater"
		}
		if err := p.Bake(ctx, o.Podman, stage, o.Updater); err != nil {
			return BuildResult{}, err
		}
		o.Image.Rootfs, o.Image.OCI = stage, ""
		for _, s := range p.Services {
			bundle = append(bundle, manifest.Container{Name: s.Name, Digest: s.ImageID})
		}
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return BuildResult{}, err
	}
	o.Image.Out = filepath.Join(o.Out, SlotFile)
	info, err := image.Build(ctx, o.Image)
	if err != nil {
		return BuildResult{}, err
	}
	raw, err := os.Open(o.Image.Out)
	if err != nil {
		return BuildResult{}, err
	}
	defer raw.Close()
	zstPath := filepath.Join(o.Out, ObjectFile)
	zst, err := os.Create(zstPath)
	if err != nil {
		return BuildResult{}, err
	}
	idx, err := chunk.Build(ctx, raw, zst)
	if cerr := zst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return BuildResult{}, fmt.Errorf("chunk %s: %w", o.Image.Out, err)
	}
	idxBytes, err := idx.MarshalBinary()
	if err != nil {
		return BuildResult{}, err
	}
	if err := os.WriteFile(filepath.Join(o.Out, IndexFile), idxBytes, 0o644); err != nil {
		return BuildResult{}, err
	}
	zfi, err := os.Stat(zstPath)
	if err != nil {
		return BuildResult{}, err
	}
	imgKey, idxKey := manifest.Keys(o.Image.Version)
	idxSum := sha256.Sum256(idxBytes)
	m := &manifest.Manifest{
		Schema:    manifest.Schema,
		Version:   o.Image.Version,
		Serial:    o.Image.Serial,
		MinSerial: o.MinSerial,
		Image: manifest.Image{Key: imgKey, Size: info.Size, SHA256: hex.EncodeToString(idx.SHA256[:]),
			CompressedSize: zfi.Size()},
		Index:      manifest.Index{Key: idxKey, SHA256: hex.EncodeToString(idxSum[:])},
		Containers: bundle,
	}
	mb, err := m.Marshal()
	if err != nil {
		return BuildResult{}, err
	}
	if err := os.WriteFile(filepath.Join(o.Out, ManifestFile), mb, 0o644); err != nil {
		return BuildResult{}, err
	}
	return BuildResult{Dir: o.Out, Manifest: m, Chunks: len(idx.Chunks), Duration: time.Since(start)}, nil
}

// stageRoot makes a copy of the root that the bundle can be baked into,
// leaving the caller's root as it was: hard links where the root and the
// output share a file system (no file is written in place: Bake only
// creates), a full copy otherwise.
func stageRoot(ctx context.Context, o image.BuildOptions, out string) (string, func(), error) {
	parent, err := filepath.Abs(filepath.Dir(filepath.Clean(out)))
	if err != nil {
		return "", nil, err
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", nil, err
	}
	stage, err := os.MkdirTemp(parent, ".twinroot-stage-")
	if err != nil {
		return "", nil, err
	}
	root := filepath.Join(stage, "root")
	if o.OCI != "" {
		err = image.ExtractOCI(ctx, o.OCI, root)
	} else if _, err = os.Stat(filepath.Join(o.Rootfs, "boot")); err == nil {
		if exec.CommandContext(ctx, "cp", "-al", o.Rootfs, root).Run() != nil {
			os.RemoveAll(root)
			if out, cerr := exec.CommandContext(ctx, "cp", "-a", o.Rootfs, root).CombinedOutput(); cerr != nil {
				err = fmt.Errorf("copy the root: %v: %s", cerr, out)
			}
		}
	} else {
		err = fmt.Errorf("%w: /boot missing in %s", image.ErrNoKernel, o.Rootfs)
	}
	cleanup := func() { os.RemoveAll(stage) }
	if err != nil {
		cleanup()
		return "", nil, err
	}
	return root, cleanup, nil
}
