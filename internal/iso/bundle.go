package iso

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/twinroot/twinroot/image"
	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/manifest"
	"github.com/twinroot/twinroot/internal/release"
)

// ErrUnsigned is a release directory whose manifest.json is not signed.
var ErrUnsigned = fmt.Errorf("%w: manifest.json is not signed (sign it with `updater sign`)", manifest.ErrBadSignature)

// Bundle is a verified release: its signed manifest, checked against the
// keys its own image trusts.
type Bundle struct {
	Dir      string
	Signed   []byte // manifest.json as signed
	Manifest *manifest.Manifest
	KeyIDs   []string // the keys the image trusts
}

// OpenBundle reads dir (a build output directory of `updater build`,
// signed by `updater sign`) and verifies manifest.json: it must be signed,
// and by a key the slot image trusts (/usr/lib/twinroot/trusted in the
// image). The image's bytes are not hashed here: see Bundle.CheckImage.
// Expiry is not checked: a medium is installed long after it is made.
func OpenBundle(dir string) (*Bundle, error) {
	signed, err := os.ReadFile(filepath.Join(dir, release.ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("release %s: %w", dir, err)
	}
	if !manifest.IsSigned(signed) {
		return nil, fmt.Errorf("release %s: %w", dir, ErrUnsigned)
	}
	ring, err := trustedKeys(filepath.Join(dir, release.SlotFile))
	if err != nil {
		return nil, fmt.Errorf("release %s: %w", dir, err)
	}
	// The policy takes the channel and the time from the manifest itself:
	// an installer follows no channel yet, and installs a release however
	// old. Only the signature and the form are checked.
	env, err := manifest.ParseEnvelope(signed)
	if err != nil {
		return nil, fmt.Errorf("release %s: %w", dir, err)
	}
	bare, err := manifest.Decode(env.Manifest)
	if err != nil {
		return nil, fmt.Errorf("release %s: %w", dir, err)
	}
	m, err := manifest.Verify(signed, manifest.Policy{Channel: bare.Channel, Trusted: ring, Now: bare.Created})
	if err != nil {
		return nil, fmt.Errorf("release %s: %w (the image trusts %s)", dir, err, strings.Join(ring.IDs(), ", "))
	}
	return &Bundle{Dir: dir, Signed: signed, Manifest: m, KeyIDs: ring.IDs()}, nil
}

// CheckImage hashes the slot image (and the chunk index, when present)
// against the manifest.
func (b *Bundle) CheckImage(ctx context.Context) error {
	if err := release.CheckDir(ctx, b.Dir, b.Manifest); err != nil {
		return fmt.Errorf("release %s: %w", b.Dir, err)
	}
	return nil
}

// trustedKeys reads the public keys the slot image at path trusts.
func trustedKeys(path string) (keys.Ring, error) {
	f, info, err := image.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	files, err := image.OpenFiles(f, 0, info.Size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	pubs, err := files.DirFiles(image.TrustedDir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ring, err := keys.ParseTrusted(image.TrustedDir, pubs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(ring) == 0 {
		return nil, fmt.Errorf("%w in %s of %s: the image could not verify any release", keys.ErrNoTrustedKeys, image.TrustedDir, path)
	}
	return ring, nil
}
