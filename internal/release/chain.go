package release

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/minio/sha256-simd"

	"github.com/twinroot/twinroot/image"
	"github.com/twinroot/twinroot/internal/chunk"
	"github.com/twinroot/twinroot/internal/fetch"
	"github.com/twinroot/twinroot/internal/manifest"
	"github.com/twinroot/twinroot/internal/refusal"
	"github.com/twinroot/twinroot/internal/source"
)

// ErrUnsigned is a release directory whose manifest.json is not signed.
var ErrUnsigned = manifest.ErrUnsigned

// maxIndex bounds the chunk index read from a store: a full slot's index
// is about 1.4 MiB.
const maxIndex = 64 << 20

// Release is a release whose signed manifest passed a policy and whose
// chunk index matches the manifest: what the slot engine writes.
//
// The verification chain is manifest → index → object, each link checked
// against the one before: manifest.Verify checks the signature and every
// acceptance rule, CheckIndex the index's bytes against the manifest's
// SHA-256 and the image it describes against the manifest's, and package
// fetch (or Verify, for a whole object) every chunk of the object against
// the index. The agent, the ISO, the installer and `updater verify` all
// go through it.
type Release struct {
	Source   source.Source
	Channel  string
	Signed   []byte // the manifest document as signed
	Manifest *manifest.Manifest
	Index    *chunk.Index
}

// ObjectKey is the key of the release's slot.img.zst in its source.
func (r *Release) ObjectKey() string { return path.Join(r.Channel, r.Manifest.Image.Key) }

// Open completes the chain for a manifest that passed manifest.Verify: it
// fetches the release's index from src under g (watched, transient errors
// retried, an index that does not match the manifest fetched once more, as
// a byte flipped on the wire heals and a store that holds other bytes
// fails twice) and checks it against the manifest.
func Open(ctx context.Context, src source.Source, channel string, signed []byte, m *manifest.Manifest, g fetch.Guard) (*Release, error) {
	key := path.Join(channel, m.Index.Key)
	var idx *chunk.Index
	_, _, err := fetch.Get(ctx, src, key, "", maxIndex, g, func(b []byte) error {
		var err error
		if idx, err = CheckIndex(b, m); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Release{Source: src, Channel: channel, Signed: signed, Manifest: m, Index: idx}, nil
}

// CheckIndex is the chain's second link: the index's bytes hash to the
// manifest's index SHA-256, parse, and describe the manifest's image.
func CheckIndex(b []byte, m *manifest.Manifest) (*chunk.Index, error) {
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != m.Index.SHA256 {
		return nil, fmt.Errorf("%w: index SHA-256 %x, the manifest says %s", refusal.ErrMismatch, sum, m.Index.SHA256)
	}
	idx, err := chunk.ParseIndex(b)
	if err != nil {
		return nil, err
	}
	if idx.Size != m.Image.Size || idx.CompressedSize != m.Image.CompressedSize || hex.EncodeToString(idx.SHA256[:]) != m.Image.SHA256 {
		return nil, fmt.Errorf("%w: the index describes another image (%d raw / %d compressed bytes) than the manifest (%d / %d)",
			refusal.ErrMismatch, idx.Size, idx.CompressedSize, m.Image.Size, m.Image.CompressedSize)
	}
	return idx, nil
}

// get reads key whole, at most limit bytes.
func get(ctx context.Context, src source.Source, key string, limit int64) ([]byte, error) {
	body, _, err := src.Get(ctx, key, "")
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", key, err)
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, limit))
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", key, err)
	}
	return b, nil
}

// DirSource serves a build output directory as a channel holding its one
// release, so that a release on local media goes through the same chain,
// rules and engine as one in a store: <any channel>/latest.json is the
// directory's manifest.json, and <any channel>/<version>/<object> one of
// its files. Nothing else is served.
func DirSource(dir string) (source.Source, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(abs, ManifestFile)); err != nil {
		return nil, refusal.Errorf("release %s: %w (want a build output directory of updater build)", dir, err)
	}
	src, err := source.Open(context.Background(), "file://"+abs, source.Options{})
	if err != nil {
		return nil, err
	}
	return dirSource{src}, nil
}

type dirSource struct{ source.Source }

// local maps a key of the channel layout to the directory's file.
func (d dirSource) local(key string) (string, error) {
	parts := strings.Split(key, "/")
	switch {
	case len(parts) == 2 && parts[1] == manifest.Latest:
		return ManifestFile, nil
	case len(parts) == 3 && parts[2] == ObjectFile:
		// A medium may carry slot.img alone (the installer ISO): the engine
		// copies every chunk from it and asks for the object only for a
		// chunk whose SHA-256 differs from the signed index.
		if _, _, err := d.Source.Stat(context.Background(), ObjectFile); errors.Is(err, source.ErrNotFound) {
			return "", fmt.Errorf("%w: a chunk of %s has another SHA-256 than the signed index names, and %s has no %s to fetch it from: %w",
				refusal.ErrMismatch, SlotFile, d.Source, ObjectFile, source.ErrNotFound)
		}
		return parts[2], nil
	case len(parts) == 3 && (parts[2] == IndexFile || parts[2] == ManifestFile):
		return parts[2], nil
	}
	return "", fmt.Errorf("%s in %s: %w", key, d.Source, source.ErrNotFound)
}

func (d dirSource) Get(ctx context.Context, key, etag string) (io.ReadCloser, string, error) {
	k, err := d.local(key)
	if err != nil {
		return nil, "", err
	}
	return d.Source.Get(ctx, k, etag)
}

func (d dirSource) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	k, err := d.local(key)
	if err != nil {
		return nil, err
	}
	return d.Source.GetRange(ctx, k, off, n)
}

func (d dirSource) Stat(ctx context.Context, key string) (int64, string, error) {
	k, err := d.local(key)
	if err != nil {
		return 0, "", err
	}
	return d.Source.Stat(ctx, k)
}

// OpenDir verifies a build output directory for an install, where no
// device has a channel, a clock or a serial yet: manifest.json must be
// signed by a key its own slot.img trusts, and its index must match it.
// Expiry is not checked (a medium is installed long after it is made), nor
// are the image's bytes: the engine checks every chunk as it writes.
func OpenDir(ctx context.Context, dir string) (*Release, image.Slot, error) {
	src, err := DirSource(dir)
	if err != nil {
		return nil, image.Slot{}, err
	}
	signed, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, image.Slot{}, fmt.Errorf("release %s: %w", dir, err)
	}
	if !manifest.IsSigned(signed) {
		return nil, image.Slot{}, fmt.Errorf("release %s: %w", dir, ErrUnsigned)
	}
	slot, err := ReadImage(filepath.Join(dir, SlotFile))
	if err != nil {
		return nil, image.Slot{}, fmt.Errorf("release %s: %w", dir, err)
	}
	env, err := manifest.ParseEnvelope(signed)
	if err != nil {
		return nil, image.Slot{}, fmt.Errorf("release %s: %w", dir, err)
	}
	bare, err := manifest.Decode(env.Manifest)
	if err != nil {
		return nil, image.Slot{}, fmt.Errorf("release %s: %w", dir, err)
	}
	m, err := manifest.Verify(signed, manifest.Policy{Channel: bare.Channel, Trusted: slot.Trusted, Now: bare.Created})
	if err != nil {
		return nil, image.Slot{}, fmt.Errorf("release %s: %w (the image trusts %s)", dir, err, strings.Join(slot.Keys, ", "))
	}
	if slot.Version != m.Version || slot.Serial != m.Serial {
		return nil, image.Slot{}, fmt.Errorf("release %s: %w: slot.img is %s (serial %d), the manifest %s (serial %d)",
			dir, refusal.ErrMismatch, slot.Version, slot.Serial, m.Version, m.Serial)
	}
	r, err := Open(ctx, src, m.Channel, signed, m, fetch.Guard{Retry: fetch.Backoff(1, 0, 0)})
	if err != nil {
		return nil, image.Slot{}, fmt.Errorf("release %s: %w", dir, err)
	}
	return r, slot, nil
}

// ReadImage reads a slot image file and refuses one that would leave a
// disk that boots nothing: not a squashfs GRUB reads, no kernel or initrd,
// no version, or no trusted key (it could never verify an update).
func ReadImage(path string) (image.Slot, error) {
	f, _, err := image.Open(path)
	if err != nil {
		return image.Slot{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return image.Slot{}, err
	}
	s, err := image.ReadSlot(f, 0, fi.Size())
	if err != nil {
		return image.Slot{}, fmt.Errorf("%s: %w", path, err)
	}
	files, err := image.OpenFiles(f, 0, s.Size)
	if err != nil {
		return image.Slot{}, fmt.Errorf("%s: %w", path, err)
	}
	for _, name := range image.BootFiles {
		if !files.Has(name) {
			return image.Slot{}, fmt.Errorf("%s: %w: no %s", path, image.ErrNoKernel, name)
		}
	}
	if s.Version == "" {
		return image.Slot{}, refusal.Errorf("%s: the image has no %s (build it with updater build)", path, image.VersionFile)
	}
	return s, nil
}

// Bare makes a release of a bare slot image, for `installer install` from
// a build host: ReadImage's checks, and an index cut from the image's own
// bytes (nothing signed vouches for them). Its source serves nothing: the
// engine copies every chunk from the image file and hashes it against the
// index on the way.
func Bare(ctx context.Context, path string) (*Release, image.Slot, error) {
	slot, err := ReadImage(path)
	if err != nil {
		return nil, image.Slot{}, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, image.Slot{}, err
	}
	defer f.Close()
	// The object a bare image has not is described as the raw image
	// itself, so the index keeps its form; nothing is ever fetched.
	idx := &chunk.Index{Params: chunk.DefaultParams, Size: slot.Size, CompressedSize: slot.Size}
	h := sha256.New()
	err = chunk.Scan(ctx, io.TeeReader(io.LimitReader(f, slot.Size), h), idx.Params, func(c chunk.Chunk) error {
		c.CompressedOffset, c.CompressedLength = c.Offset, c.Length
		idx.Chunks = append(idx.Chunks, c)
		return nil
	})
	if err != nil {
		return nil, image.Slot{}, fmt.Errorf("%s: %w", path, err)
	}
	copy(idx.SHA256[:], h.Sum(nil))
	m := &manifest.Manifest{Version: slot.Version, Serial: slot.Serial,
		Image: manifest.Image{Key: ObjectFile, Size: slot.Size, SHA256: hex.EncodeToString(idx.SHA256[:])}}
	return &Release{Source: bareSource(path), Manifest: m, Index: idx}, slot, nil
}

// bareSource is the source of a bare image: it has no object.
type bareSource string

func (b bareSource) String() string { return string(b) }

func (b bareSource) err(key string) error {
	return fmt.Errorf("%s: %w: a bare slot image has no %s; it changed while it was read", b, source.ErrNotFound, key)
}

func (b bareSource) Get(_ context.Context, key, _ string) (io.ReadCloser, string, error) {
	return nil, "", b.err(key)
}

func (b bareSource) GetRange(_ context.Context, key string, _, _ int64) (io.ReadCloser, error) {
	return nil, b.err(key)
}

func (b bareSource) Stat(_ context.Context, key string) (int64, string, error) {
	return 0, "", b.err(key)
}
