package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/twinroot/twinroot/internal/atomicfile"
	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/manifest"
	"github.com/twinroot/twinroot/internal/refusal"
)

// SignDir signs DIR/manifest.json for channel, valid for ttl from now, after
// checking the build outputs beside it, and replaces it atomically with the
// signed envelope. On any error the file is left as it was.
func SignDir(ctx context.Context, dir, channel string, now time.Time, ttl time.Duration, signers ...*keys.PrivateKey) ([]byte, *manifest.Manifest, error) {
	return SignDirWith(ctx, dir, manifest.SignOptions{Channel: channel, Now: now, TTL: ttl}, signers...)
}

// SignDirWith is SignDir with o, which may set a staged rollout.
func SignDirWith(ctx context.Context, dir string, o manifest.SignOptions, signers ...*keys.PrivateKey) ([]byte, *manifest.Manifest, error) {
	path := filepath.Join(dir, ManifestFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read manifest: %w", err)
	}
	signed, m, err := manifest.SignReleaseWith(b, o, signers...)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w; not changed", path, err)
	}
	if err := CheckDir(ctx, dir, m); err != nil {
		return nil, nil, fmt.Errorf("%w; %s not signed", err, path)
	}
	if err := atomicfile.Write(path, signed, 0o644); err != nil {
		return nil, nil, err
	}
	return signed, m, nil
}

// CheckDir checks the build outputs present in dir against m: a signature
// vouches for the bytes beside it.
func CheckDir(ctx context.Context, dir string, m *manifest.Manifest) error {
	for _, a := range []struct {
		name  string
		check func(io.Reader) error
	}{
		{SlotFile, m.CheckImage},
		{manifest.IndexObject, m.CheckIndex},
	} {
		f, err := os.Open(filepath.Join(dir, a.name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		err = a.check(interruptibleReader{ctx, f})
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", a.name, err)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, manifest.ImageObject))
	if err == nil && fi.Size() != m.Image.CompressedSize {
		return fmt.Errorf("%s: %w: %d bytes, manifest says compressed_size %d", manifest.ImageObject, refusal.ErrMismatch, fi.Size(), m.Image.CompressedSize)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// interruptibleReader stops a long hash when the command is interrupted.
type interruptibleReader struct {
	ctx context.Context
	r   io.Reader
}

func (c interruptibleReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
