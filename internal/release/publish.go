package release

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/minio/sha256-simd"

	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/manifest"
	"github.com/twinroot/twinroot/internal/source"
)

// PublishOptions of a publish.
type PublishOptions struct {
	Dir     string
	Channel string
	Signers []*keys.PrivateKey
	TTL     time.Duration
	Now     time.Time
	// Rollout, when set, stages the release (package rollout): it starts
	// at Now when its start is zero.
	Rollout *manifest.Rollout
	// PartSize and Parallel of the multipart upload of the image object.
	PartSize int64
	Parallel int
}

// PublishResult says what was published where.
type PublishResult struct {
	Manifest *manifest.Manifest `json:"manifest"`
	Objects  []string           `json:"objects"`
	Bytes    int64              `json:"bytes"`
	Previous uint64             `json:"previous_serial"`
	Duration time.Duration      `json:"duration_ns"`
}

// Publish signs DIR for the channel and uploads it: the image object and
// the index, then the versioned manifest, then latest.json last, so no
// device sees a half-published release. Nothing is uploaded when the serial
// is not above the channel's current one or the version exists; latest.json
// is replaced only if nobody published in the meantime.
func Publish(ctx context.Context, st source.Store, o PublishOptions) (PublishResult, error) {
	start := time.Now()
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.PartSize == 0 {
		o.PartSize = 16 << 20
	}
	if o.Parallel == 0 {
		o.Parallel = 4
	}
	if err := manifest.ValidChannel(o.Channel); err != nil {
		return PublishResult{}, err
	}
	// Check the channel before signing: a refused publish changes nothing,
	// not even DIR.
	mb, err := os.ReadFile(filepath.Join(o.Dir, ManifestFile))
	if err != nil {
		return PublishResult{}, fmt.Errorf("read manifest: %w", err)
	}
	bare, err := unsignedManifest(mb)
	if err != nil {
		return PublishResult{}, err
	}
	latestKey := path.Join(o.Channel, manifest.Latest)
	cur, etag, err := current(ctx, st, latestKey)
	if err != nil {
		return PublishResult{}, err
	}
	r := PublishResult{}
	if cur != nil {
		r.Previous = cur.Serial
		if bare.Serial <= cur.Serial {
			return r, reworded{manifest.ErrNotNewer, fmt.Sprintf("serial %d (version %s) is not above channel %s's current serial %d (version %s); nothing published",
				bare.Serial, bare.Version, o.Channel, cur.Serial, cur.Version)}
		}
	}
	verKey := path.Join(o.Channel, bare.Version, manifest.File)
	if _, _, err := st.Stat(ctx, verKey); err == nil {
		return r, fmt.Errorf("%w: version %s is already published on channel %s; nothing published", source.ErrExists, bare.Version, o.Channel)
	} else if !errors.Is(err, source.ErrNotFound) {
		return r, err
	}
	if o.Rollout != nil && o.Rollout.Start.IsZero() {
		r := *o.Rollout
		r.Start = o.Now.UTC().Truncate(time.Second)
		o.Rollout = &r
	}
	signed, m, err := SignDirWith(ctx, o.Dir, manifest.SignOptions{Channel: o.Channel, Now: o.Now, TTL: o.TTL, Rollout: o.Rollout}, o.Signers...)
	if err != nil {
		return r, err
	}
	r.Manifest = m
	upload := func(key, file string, multipart bool) error {
		f, err := os.Open(filepath.Join(o.Dir, file))
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if multipart {
			err = st.Upload(ctx, key, f, fi.Size(), o.PartSize, o.Parallel)
		} else {
			err = st.PutIfAbsent(ctx, key, f, fi.Size())
		}
		if errors.Is(err, source.ErrExists) {
			// A publish that stopped before its manifest left this object:
			// take it when it holds the same bytes.
			if same, serr := sameObject(ctx, st, key, f); serr != nil || !same {
				return fmt.Errorf("%s exists in the store with other content: %w", key, err)
			}
			err = nil
		}
		if err != nil {
			return fmt.Errorf("upload %s: %w", key, err)
		}
		r.Objects = append(r.Objects, key)
		r.Bytes += fi.Size()
		return nil
	}
	if err := upload(path.Join(o.Channel, m.Image.Key), ObjectFile, true); err != nil {
		return r, err
	}
	if err := upload(path.Join(o.Channel, m.Index.Key), IndexFile, false); err != nil {
		return r, err
	}
	if err := upload(verKey, ManifestFile, false); err != nil {
		return r, err
	}
	if err := st.Replace(ctx, latestKey, bytes.NewReader(signed), int64(len(signed)), etag); err != nil {
		return r, fmt.Errorf("update %s: %w (another publish ran at the same time?)", latestKey, err)
	}
	r.Objects = append(r.Objects, latestKey)
	r.Bytes += int64(len(signed))
	r.Duration = time.Since(start)
	return r, nil
}

// reworded is an error with its own message that still matches a sentinel
// with errors.Is.
type reworded struct {
	sentinel error
	msg      string
}

func (r reworded) Error() string { return r.msg }
func (r reworded) Unwrap() error { return r.sentinel }

// unsignedManifest reads a bare or signed manifest without verifying it,
// for the publisher's own checks.
func unsignedManifest(b []byte) (*manifest.Manifest, error) {
	if manifest.IsSigned(b) {
		env, err := manifest.ParseEnvelope(b)
		if err != nil {
			return nil, err
		}
		b = env.Manifest
	}
	return manifest.Decode(b)
}

// current reads the channel's latest manifest (not verified: it only
// decides what may follow it) and its ETag; nil when the channel is new.
func current(ctx context.Context, st source.Store, key string) (*manifest.Manifest, string, error) {
	body, etag, err := st.Get(ctx, key, "")
	if errors.Is(err, source.ErrNotFound) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", key, err)
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, manifest.DefaultMaxSize+1))
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", key, err)
	}
	m, err := unsignedManifest(b)
	if err != nil {
		return nil, "", fmt.Errorf("%s in the store: %w", key, err)
	}
	return m, etag, nil
}

func sameObject(ctx context.Context, st source.Store, key string, f *os.File) (bool, error) {
	body, _, err := st.Get(ctx, key, "")
	if err != nil {
		return false, err
	}
	defer body.Close()
	h1, h2 := sha256.New(), sha256.New()
	if _, err := io.Copy(h1, body); err != nil {
		return false, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return false, err
	}
	if _, err := io.Copy(h2, f); err != nil {
		return false, err
	}
	return bytes.Equal(h1.Sum(nil), h2.Sum(nil)), nil
}
