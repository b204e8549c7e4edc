package source

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/twinroot/twinroot/internal/storeurl"
)

type httpSource struct {
	loc    storeurl.Location
	client *http.Client
}

func openHTTP(loc storeurl.Location, opts Options) *httpSource {
	c := opts.HTTPClient
	if c == nil {
		c = http.DefaultClient
	}
	return &httpSource{loc: loc, client: c}
}

func (h *httpSource) String() string { return h.loc.Raw }

func (h *httpSource) url(key string) string {
	p := "/" + key
	if h.loc.Prefix != "" {
		p = "/" + h.loc.Prefix + "/" + key
	}
	u := url.URL{Scheme: h.loc.Scheme, Host: h.loc.Host, Path: p}
	return u.String()
}

func (h *httpSource) do(ctx context.Context, method, key string, header http.Header) (*http.Response, error) {
	if err := storeurl.CheckKey(key); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, h.url(key), nil)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", strings.ToLower(method), h.url(key), err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", strings.ToLower(method), h.url(key), netError(err))
	}
	return resp, nil
}

// statusError maps a response that is not the one asked for to an error,
// closing its body.
func (h *httpSource) statusError(op, key string, resp *http.Response) error {
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096)) // lets the connection be reused
	switch resp.StatusCode {
	case http.StatusNotFound:
		return fmt.Errorf("%s %s: %w", op, h.url(key), ErrNotFound)
	case http.StatusNotModified:
		return fmt.Errorf("%s %s: %w", op, h.url(key), ErrNotModified)
	case http.StatusRequestedRangeNotSatisfiable:
		return fmt.Errorf("%s %s: %w", op, h.url(key), ErrRange)
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%s %s: %w (%s)", op, h.url(key), ErrDenied, resp.Status)
	}
	return fmt.Errorf("%s %s: server answered %s", op, h.url(key), resp.Status)
}

func (h *httpSource) Get(ctx context.Context, key, etag string) (io.ReadCloser, string, error) {
	hdr := http.Header{}
	if etag != "" {
		hdr.Set("If-None-Match", etag)
	}
	resp, err := h.do(ctx, http.MethodGet, key, hdr)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", h.statusError("get", key, resp)
	}
	body := io.ReadCloser(resp.Body)
	if resp.ContentLength >= 0 {
		body = &exactReader{r: resp.Body, c: resp.Body, left: resp.ContentLength}
	}
	return body, resp.Header.Get("ETag"), nil
}

func (h *httpSource) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if err := checkRange(off, n); err != nil {
		return nil, err
	}
	hdr := http.Header{}
	hdr.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	op := fmt.Sprintf("get [%d, %d) of", off, off+n)
	resp, err := h.do(ctx, http.MethodGet, key, hdr)
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK:
		// Reading past off would download the whole object for one chunk:
		// a store for twinroot must serve ranges (every static host and
		// CDN does).
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: server ignored the Range header (answered 200 with the whole object)", op, h.url(key))
	default:
		return nil, h.statusError(op, key, resp)
	}
	start, end, _, err := parseContentRange(resp.Header.Get("Content-Range"))
	if err != nil {
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %w", op, h.url(key), err)
	}
	if start != off {
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: server sent bytes from %d", op, h.url(key), start)
	}
	if end+1 != off+n {
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: server sent bytes up to %d: %w", op, h.url(key), end+1, ErrRange)
	}
	return &exactReader{r: resp.Body, c: resp.Body, left: n}, nil
}

// parseContentRange parses "bytes START-END/SIZE"; size is -1 when SIZE
// is *.
func parseContentRange(v string) (start, end, size int64, err error) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, 0, 0, fmt.Errorf("content-range %q: want bytes START-END/SIZE", v)
	}
	span, total, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, 0, fmt.Errorf("content-range %q: want bytes START-END/SIZE", v)
	}
	s, e, ok := strings.Cut(span, "-")
	if !ok {
		return 0, 0, 0, fmt.Errorf("content-range %q: want bytes START-END/SIZE", v)
	}
	if start, err = strconv.ParseInt(s, 10, 64); err != nil || start < 0 {
		return 0, 0, 0, fmt.Errorf("content-range %q: bad start", v)
	}
	if end, err = strconv.ParseInt(e, 10, 64); err != nil || end < start {
		return 0, 0, 0, fmt.Errorf("content-range %q: bad end", v)
	}
	size = -1
	if total != "*" {
		if size, err = strconv.ParseInt(total, 10, 64); err != nil || size <= end {
			return 0, 0, 0, fmt.Errorf("content-range %q: bad size", v)
		}
	}
	return start, end, size, nil
}

func (h *httpSource) Stat(ctx context.Context, key string) (int64, string, error) {
	resp, err := h.do(ctx, http.MethodHead, key, nil)
	if err != nil {
		return 0, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, "", h.statusError("stat", key, resp)
	}
	resp.Body.Close()
	if resp.ContentLength < 0 {
		return 0, "", fmt.Errorf("stat %s: server sent no Content-Length", h.url(key))
	}
	return resp.ContentLength, resp.Header.Get("ETag"), nil
}
