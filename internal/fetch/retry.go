package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
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
// is not there, the store refused the credentials, its host name does not
// resolve, the index is broken, the object is unchanged (a conditional
// GET), or an S3 store refused the request itself (4xx other than time-out
// and throttling). An error the S3 client marked retryable (a request
// signed with a clock the server finds off, which the client corrects for
// the next request) is not permanent.
func permanent(err error) bool {
	var sdk interface{ RetryableError() bool }
	if errors.As(err, &sdk) && sdk.RetryableError() {
		return false
	}
	for _, e := range []error{source.ErrNotFound, source.ErrRange, source.ErrReadOnly, source.ErrDenied,
		source.ErrNoHost, source.ErrNotModified, chunk.ErrMalformed} {
		if errors.Is(err, e) {
			return true
		}
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		code := re.HTTPStatusCode()
		return code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests
	}
	return false
}

// backoff handles one failure of a request: it returns nil after the
// back-off when the request should be made again, else the error to give
// up with.
func backoff(ctx context.Context, retry RetryFunc, attempt *int, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if permanent(err) {
		return err
	}
	*attempt++
	wait, ok := retry(*attempt, err)
	if !ok {
		return fmt.Errorf("giving up after %d tries: %w", *attempt, err)
	}
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

// again is backoff for a request of the run, counted in its Stats.
func (r *run) again(ctx context.Context, attempt *int, err error) error {
	n := *attempt
	err = backoff(ctx, r.o.Retry, attempt, err)
	if *attempt > n && err == nil {
		r.n.retries.Add(1)
	}
	return err
}

// openRange starts a Range request for [off, off+n) of the object, watched
// for stalls and drips (watch).
func (r *run) openRange(ctx context.Context, off, n int64) (io.ReadCloser, error) {
	r.n.requests.Add(1)
	return watch(ctx, r.o.StallTimeout, r.o.MinRate, n, &r.n.wire, func(ctx context.Context) (io.ReadCloser, error) {
		return r.o.Source.GetRange(ctx, r.o.ObjectKey, off, n)
	})
}

// watch starts a request with open and cancels it when it makes too little
// progress: when its answer has not begun within stall (a stalled
// connection never fails on its own), or when its body, during any stall
// spent waiting in Read, brings fewer than minRate bytes a second over
// that time (or the rest of the body, when less; size is the body's
// length, -1 when unknown). A read deadline alone is not enough: a
// connection that drips a byte every second never goes quiet for 30 s,
// yet would take days to bring a frame. Only the time spent waiting in
// Read counts, so time the pipeline spends blocked downstream is never
// taken for a stall. got, when set, counts the bytes that crossed the
// wire.
func watch(ctx context.Context, stall time.Duration, minRate, size int64, got interface{ Add(int64) int64 },
	open func(context.Context) (io.ReadCloser, error)) (io.ReadCloser, error) {
	rctx, cancel := context.WithCancelCause(ctx)
	t := time.AfterFunc(stall, func() { cancel(fmt.Errorf("%w: no byte for %v", errStalled, stall)) })
	body, err := open(rctx)
	t.Stop()
	if err != nil {
		err = stallCause(rctx, err)
		cancel(nil)
		return nil, err
	}
	w := &watchedBody{rc: body, ctx: rctx, cancel: cancel, d: stall, perWindow: int64(float64(minRate) * stall.Seconds()), left: size, wire: got}
	w.window()
	w.t = time.AfterFunc(stall, w.expire)
	w.t.Stop()
	return w, nil
}

// stallCause names the stall when it is why err happened (and err does
// not say so already).
func stallCause(ctx context.Context, err error) error {
	if c := context.Cause(ctx); errors.Is(c, errStalled) && !errors.Is(err, errStalled) {
		if err.Error() == c.Error() {
			return c
		}
		return fmt.Errorf("%w (%v)", c, err)
	}
	return err
}

// watchedBody is the body of a watched request. Time is cut into windows
// of d spent waiting in Read; a window that ends with fewer than need
// bytes received cancels the request. The timer runs only while a Read
// waits, and fires when the window's wait is used up within one Read.
type watchedBody struct {
	rc        io.ReadCloser
	ctx       context.Context
	cancel    context.CancelCauseFunc
	t         *time.Timer
	d         time.Duration
	perWindow int64 // bytes a window must bring: the floor rate times d
	wire      interface{ Add(int64) int64 }

	mu     sync.Mutex
	left   int64         // bytes still to come; -1 when unknown
	need   int64         // bytes this window must bring
	got    int64         // bytes this window brought
	waited time.Duration // wait of this window before the Read in progress
	since  time.Time     // start of the Read in progress; zero between Reads
}

// window starts a new window.
func (w *watchedBody) window() {
	w.need, w.got, w.waited = w.perWindow, 0, 0
	if w.left >= 0 {
		w.need = min(w.need, w.left)
	}
}

// slow is the cause of a cut for a window that brought too little.
func (w *watchedBody) slow() error {
	if w.got == 0 {
		return fmt.Errorf("%w: no byte for %v", errStalled, w.d)
	}
	return fmt.Errorf("%w: %d bytes in %v, less than %d", errStalled, w.got, w.d, w.need)
}

// expire ends the window whose wait ran out within a Read: the request
// is cancelled if the window brought too little, else a new one starts now.
func (w *watchedBody) expire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.since.IsZero() {
		return // the Read returned meanwhile: the next one checks
	}
	in := time.Since(w.since)
	if rest := w.d - w.waited - in; rest > 0 {
		w.t.Reset(rest)
		return
	}
	if w.got < w.need {
		w.cancel(w.slow())
		return
	}
	w.window()
	w.waited = -in // the Read in progress waits from now on in the new window
	w.t.Reset(w.d)
}

func (w *watchedBody) Read(p []byte) (int, error) {
	w.mu.Lock()
	if w.waited >= w.d {
		// The last Read used up the window.
		if w.got < w.need {
			cause := w.slow()
			w.mu.Unlock()
			w.cancel(cause)
			return 0, stallCause(w.ctx, cause)
		}
		w.window()
	}
	w.since = time.Now()
	w.t.Reset(w.d - w.waited)
	w.mu.Unlock()

	n, err := w.rc.Read(p)

	w.mu.Lock()
	w.t.Stop()
	w.waited += time.Since(w.since)
	w.since = time.Time{}
	w.got += int64(n)
	if w.left >= 0 {
		w.left -= int64(n)
	}
	w.mu.Unlock()
	if w.wire != nil {
		w.wire.Add(int64(n))
	}
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
