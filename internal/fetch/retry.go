package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"time"

	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/twinroot/twinroot/internal/chunk"
	"github.com/twinroot/twinroot/internal/source"
)

// RetryFunc decides, after the attempt-th consecutive transient failure of
// a request (attempt counts from 1), whether to try again and how long to
// wait first. Apply does the waiting, so a cancel is never held up by a
// back-off.
type RetryFunc func(attempt int, err error) (wait time.Duration, again bool)

// DefaultRetry makes 5 tries in all, waiting 0.5 s after the first failure
// and twice as long after each next one (at most 8 s), ±20% so that a fleet
// does not retry in step.
func DefaultRetry(attempt int, _ error) (time.Duration, bool) {
	return Backoff(5, 500*time.Millisecond, 8*time.Second)(attempt, nil)
}

// Backoff returns a RetryFunc of tries tries in all, waiting first, then
// doubling up to most, each wait ±20%.
func Backoff(tries int, first, most time.Duration) RetryFunc {
	return func(attempt int, _ error) (time.Duration, bool) {
		if attempt >= tries {
			return 0, false
		}
		d := first
		for i := 1; i < attempt && d < most; i++ {
			d *= 2
		}
		d = min(d, most)
		if d > 0 {
			d = d*4/5 + rand.N(d*2/5+1)
		}
		return d, true
	}
}

// errStalled is the cause of a request cancelled for lack of progress.
var errStalled = errors.New("stalled")

// permanent reports whether err is not worth a retry: the object or range
// is not there, the index is broken, or an S3 store refused the request
// itself (4xx other than time-out and throttling).
func permanent(err error) bool {
	if errors.Is(err, source.ErrNotFound) || errors.Is(err, source.ErrRange) ||
		errors.Is(err, source.ErrReadOnly) || errors.Is(err, chunk.ErrMalformed) {
		return true
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		code := re.HTTPStatusCode()
		return code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests
	}
	return false
}

// again handles one failure of a request: it returns nil after the back-off
// when the request should be made again, else the error to give up with.
func (r *run) again(ctx context.Context, attempt *int, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if permanent(err) {
		return err
	}
	*attempt++
	wait, ok := r.o.Retry(*attempt, err)
	if !ok {
		return fmt.Errorf("giving up after %d tries: %w", *attempt, err)
	}
	r.n.retries.Add(1)
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// openRange starts a Range request for [off, off+n) of the object, cancelled
// when it receives no byte for StallTimeout (a stalled connection never
// fails on its own).
func (r *run) openRange(ctx context.Context, off, n int64) (io.ReadCloser, error) {
	r.n.requests.Add(1)
	rctx, cancel := context.WithCancelCause(ctx)
	d := r.o.StallTimeout
	t := time.AfterFunc(d, func() { cancel(fmt.Errorf("%w: no byte for %v", errStalled, d)) })
	body, err := r.o.Source.GetRange(rctx, r.o.ObjectKey, off, n)
	t.Stop()
	if err != nil {
		err = stallCause(rctx, err)
		cancel(nil)
		return nil, err
	}
	return &watchedBody{rc: body, t: t, d: d, ctx: rctx, cancel: cancel, got: &r.n.wire}, nil
}

// stallCause names the stall when it is why err happened.
func stallCause(ctx context.Context, err error) error {
	if c := context.Cause(ctx); errors.Is(c, errStalled) {
		return fmt.Errorf("%w (%v)", c, err)
	}
	return err
}

// watchedBody arms the stall timer only while a Read waits, so time the
// pipeline spends blocked downstream is never taken for a stall, and counts
// the bytes that crossed the wire.
type watchedBody struct {
	rc     io.ReadCloser
	t      *time.Timer
	d      time.Duration
	ctx    context.Context
	cancel context.CancelCauseFunc
	got    interface{ Add(int64) int64 }
}

func (w *watchedBody) Read(p []byte) (int, error) {
	w.t.Reset(w.d)
	n, err := w.rc.Read(p)
	w.t.Stop()
	w.got.Add(int64(n))
	if err != nil && err != io.EOF {
		err = stallCause(w.ctx, err)
	}
	return n, err
}

func (w *watchedBody) Close() error {
	w.t.Stop()
	err := w.rc.Close()
	w.cancel(nil)
	return err
}
