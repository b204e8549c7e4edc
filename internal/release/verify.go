package release

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"time"

	"github.com/minio/sha256-simd"

	"github.com/twinroot/twinroot/internal/chunk"
	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/manifest"
	"github.com/twinroot/twinroot/internal/refusal"
	"github.com/twinroot/twinroot/internal/source"
)

// VerifyOptions of a release check.
type VerifyOptions struct {
	Channel string
	Version string // "" for the channel's latest.json
	Trusted keys.Ring
	Now     time.Time
}

// VerifyResult reports a verified release.
type VerifyResult struct {
	Manifest *manifest.Manifest `json:"manifest"`
	Chunks   int                `json:"chunks"`
	Fetched  int64              `json:"bytes_fetched"`
}

// Verify fetches a published release as a device would and checks the
// signed manifest (every acceptance rule that does not depend on a
// device), the index against the manifest, and every chunk of the object
// against the index, and the whole image against the manifest's SHA-256.
// The error says which object, chunk and offset is wrong.
func Verify(ctx context.Context, src source.Source, o VerifyOptions) (VerifyResult, error) {
	var r VerifyResult
	key := path.Join(o.Channel, manifest.Latest)
	if o.Version != "" {
		key = path.Join(o.Channel, o.Version, manifest.File)
	}
	mb, err := get(ctx, src, key, manifest.DefaultMaxSize+1)
	if err != nil {
		return r, err
	}
	r.Fetched += int64(len(mb))
	m, err := manifest.Verify(mb, manifest.Policy{Trusted: o.Trusted, Channel: o.Channel, Now: o.Now})
	if err != nil {
		return r, fmt.Errorf("%s: %w", key, err)
	}
	r.Manifest = m
	idxKey := path.Join(o.Channel, m.Index.Key)
	ib, err := get(ctx, src, idxKey, maxIndex)
	if err != nil {
		return r, err
	}
	r.Fetched += int64(len(ib))
	idx, err := CheckIndex(ib, m)
	if err != nil {
		return r, fmt.Errorf("%s: %w", idxKey, err)
	}
	objKey := path.Join(o.Channel, m.Image.Key)
	body, _, err := src.Get(ctx, objKey, "")
	if err != nil {
		return r, fmt.Errorf("fetch %s: %w", objKey, err)
	}
	defer body.Close()
	br := bufio.NewReaderSize(body, 1<<20)
	h := sha256.New()
	var frame, raw []byte
	for i, c := range idx.Chunks {
		if err := ctx.Err(); err != nil {
			return r, err
		}
		frame = append(frame[:0], make([]byte, c.CompressedLength)...)
		if _, err := io.ReadFull(br, frame); err != nil {
			return r, fmt.Errorf("%s: chunk %d at compressed offset %d: %w (object shorter than the index)", objKey, i, c.CompressedOffset, err)
		}
		r.Fetched += c.CompressedLength
		if raw, err = chunk.AppendChunk(raw[:0], c, frame); err != nil {
			return r, fmt.Errorf("%s: chunk %d (raw offset %d): %w", objKey, i, c.Offset, err)
		}
		h.Write(raw)
		r.Chunks++
	}
	if n, _ := io.Copy(io.Discard, br); n > 0 {
		return r, fmt.Errorf("%s: %w: %d bytes past the last chunk", objKey, chunk.ErrCorrupt, n)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != m.Image.SHA256 {
		return r, fmt.Errorf("%s: %w: image SHA-256 %s, manifest says %s", objKey, refusal.ErrMismatch, got, m.Image.SHA256)
	}
	return r, nil
}
