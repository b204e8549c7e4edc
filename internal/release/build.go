package release

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/minio/sha256-simd"

	"github.com/twinroot/twinroot/image"
	"github.com/twinroot/twinroot/internal/chunk"
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
		Index: manifest.Index{Key: idxKey, SHA256: hex.EncodeToString(idxSum[:])},
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
