package fetch

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/twinroot/twinroot/internal/refusal"
	"github.com/twinroot/twinroot/internal/source"
)

// Guard is how a device watches and retries a request to its store, the
// same for the image's ranges (Options) and for the objects read whole
// (Get: latest.json and chunks.idx). Zero fields are the defaults.
type Guard struct {
	StallTimeout time.Duration // DefaultStallTimeout
	MinRate      int64         // DefaultMinRate
	Retry        RetryFunc     // DefaultRetry
}

func (g Guard) withDefaults() Guard {
	if g.StallTimeout <= 0 {
		g.StallTimeout = DefaultStallTimeout
	}
	if g.MinRate <= 0 {
		g.MinRate = DefaultMinRate
	}
	if g.Retry == nil {
		g.Retry = DefaultRetry
	}
	return g
}

// Get reads key whole from src, at most limit bytes, with a conditional
// GET when etag is set (source.ErrNotModified is returned as it is). The
// request is watched as Apply's are (no byte for StallTimeout, or fewer
// than MinRate bytes a second, cancels it) and a transient failure is
// retried per g.Retry. check, when set, judges the bytes: a body it
// refuses, or one larger than limit, is fetched once more, whole (a byte
// flipped on the wire heals; a store that holds other bytes fails the same
// way twice, and that error is returned). So one call makes at most one
// request more than g.Retry allows tries.
func Get(ctx context.Context, src source.Source, key, etag string, limit int64, g Guard, check func([]byte) error) (body []byte, newETag string, err error) {
	g = g.withDefaults()
	attempt, checked := 0, false
	for {
		b, tag, err := getOnce(ctx, src, key, etag, limit, g)
		fetched := err == nil
		if fetched && int64(len(b)) > limit {
			err = fmt.Errorf("%w: %s has more than %d bytes", refusal.ErrMismatch, key, limit)
		} else if fetched && check != nil {
			err = check(b)
		}
		if err == nil {
			return b, tag, nil
		}
		if fetched {
			// The request succeeded; its bytes did not.
			if checked {
				return nil, "", fmt.Errorf("%w (fetched twice)", err)
			}
			checked, etag = true, ""
			continue
		}
		if err := backoff(ctx, g.Retry, &attempt, err); err != nil {
			return nil, "", fmt.Errorf("fetch %s from %s: %w", key, src, err)
		}
	}
}

// getOnce makes one watched request for key and reads up to limit+1 bytes
// of it.
func getOnce(ctx context.Context, src source.Source, key, etag string, limit int64, g Guard) (b []byte, tag string, err error) {
	body, err := watch(ctx, g.StallTimeout, g.MinRate, -1, nil, func(ctx context.Context) (io.ReadCloser, error) {
		rc, t, err := src.Get(ctx, key, etag)
		tag = t
		return rc, err
	})
	if err != nil {
		return nil, "", err
	}
	defer body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(body, limit+1)); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), tag, nil
}
