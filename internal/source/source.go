package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/twinroot/twinroot/internal/refusal"
	"github.com/twinroot/twinroot/internal/storeurl"
)

// Sentinel errors callers act on; check them with errors.Is.
var (
	// ErrNotFound: the key does not exist in the store.
	ErrNotFound = errors.New("not found")
	// ErrNotModified: a conditional Get found the object unchanged; no body
	// was transferred.
	ErrNotModified = errors.New("not modified")
	// ErrExists: a create-only write found the key already present; the
	// stored object was left as it was.
	ErrExists = refusal.New("already exists, left unchanged")
	// ErrChanged: a compare-and-swap write found the object changed since
	// it was read (another publisher); the stored object was left as it was.
	ErrChanged = refusal.New("changed since it was read, left unchanged")
	// ErrRange: a range read asked for bytes past the end of the object.
	ErrRange = errors.New("range past the end of the object")
	// ErrReadOnly: the URL names a read-only source (https) where a store
	// was asked for.
	ErrReadOnly = errors.New("source is read-only")
	// ErrDenied: the store refused the request (401 or 403): the
	// credentials are wrong or may not read the key. S3 also answers 403
	// for a missing key to a caller that may not list the bucket.
	ErrDenied = errors.New("access denied")
	// ErrNoHost: the store's host name does not resolve (NXDOMAIN).
	ErrNoHost = errors.New("host name does not resolve")
)

// Source reads a release store. Keys are slash-separated and relative to the
// prefix of the URL the source was opened with.
type Source interface {
	// Get fetches key. With etag set it is a conditional GET (If-None-Match)
	// that returns ErrNotModified, and no body, when the object still has
	// that ETag. newETag is the object's current ETag, opaque to callers.
	Get(ctx context.Context, key, etag string) (body io.ReadCloser, newETag string, err error)
	// GetRange fetches the n bytes of key at [off, off+n). The reader yields
	// exactly n bytes or an error.
	GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error)
	// Stat returns the size and ETag of key.
	Stat(ctx context.Context, key string) (size int64, etag string, err error)
	// String returns the URL the source was opened with.
	String() string
}

// Object is one entry of a listing.
type Object struct {
	Key  string `json:"key"` // relative to the store's prefix
	Size int64  `json:"size"`
	ETag string `json:"etag"`
}

// Store is a Source that can also be published to. Every write is
// create-only: an existing key is never overwritten.
type Store interface {
	Source
	// PutIfAbsent writes size bytes from r to key unless key exists, in
	// which case it returns ErrExists and the stored object is unchanged.
	PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error
	// Upload writes size bytes from r to key in parts of partSize bytes,
	// parallel parts at a time, create-only like PutIfAbsent. partSize 0
	// picks a default; it is raised when the object would need more parts
	// than the store allows.
	Upload(ctx context.Context, key string, r io.ReaderAt, size, partSize int64, parallel int) error
	// Replace writes size bytes from r to key only if key still has the
	// ETag etag (compare-and-swap, for latest.json), else it returns
	// ErrChanged and the stored object is unchanged. An empty etag means
	// key must not exist yet (ErrExists otherwise).
	Replace(ctx context.Context, key string, r io.Reader, size int64, etag string) error
	// Put writes size bytes from r to key, replacing what is there: for
	// objects that only their writer writes, like a device's reports,
	// with keys that may put objects and do nothing else (no read, no
	// list), so no condition can be checked.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// List returns the objects whose key starts with prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]Object, error)
}

// Options configure how a source reaches its store. Every field is optional.
type Options struct {
	// Endpoint is the S3 endpoint URL (MinIO, versitygw, Ceph, ...); empty
	// means AWS itself or AWS_ENDPOINT_URL(_S3) from the environment.
	Endpoint string
	// Region defaults to the AWS configuration chain, then us-east-1.
	Region string
	// AccessKey and SecretKey (and SessionToken) are static credentials;
	// when empty the usual AWS chain applies (environment, shared config
	// and credentials files with Profile, ...).
	AccessKey, SecretKey, SessionToken string
	Profile                            string
	// Anonymous sends unsigned requests (a public-read bucket) and skips the
	// credential chain.
	Anonymous bool
	// HTTPClient is used for s3 and https; nil means a default client.
	HTTPClient *http.Client
	// MaxAttempts bounds the requests the S3 client makes for one call,
	// its own retries included; 0 is the SDK's default (3). A caller
	// that retries with a policy of its own sets 1, so that one failure
	// is one request and the policy alone decides how many follow.
	MaxAttempts int
}

// Open opens the release store named by rawURL for reading:
// s3://bucket/prefix, https://host/prefix (or http://), file:///path.
func Open(ctx context.Context, rawURL string, opts Options) (Source, error) {
	u, err := storeurl.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "s3":
		return openS3(ctx, u, opts)
	case "https", "http":
		return openHTTP(u, opts), nil
	default:
		return openFile(u)
	}
}

// OpenStore opens the release store named by rawURL for publishing: s3:// or
// file:// (air-gapped media). https is read-only and gives ErrReadOnly.
func OpenStore(ctx context.Context, rawURL string, opts Options) (Store, error) {
	u, err := storeurl.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "s3":
		return openS3(ctx, u, opts)
	case "file":
		return openFile(u)
	default:
		return nil, fmt.Errorf("open %s for publishing: %w (publish to s3:// or file://)", rawURL, ErrReadOnly)
	}
}

// netError names a host name that does not resolve with ErrNoHost, and
// leaves any other error as it is.
func netError(err error) error {
	var de *net.DNSError
	if errors.As(err, &de) && de.IsNotFound {
		return fmt.Errorf("%w (%v)", ErrNoHost, de)
	}
	return err
}

// checkRange refuses a negative offset or a non-positive length.
func checkRange(off, n int64) error {
	if off < 0 || n <= 0 {
		return fmt.Errorf("range [%d, %d): want off >= 0 and n > 0", off, off+n)
	}
	return nil
}

// exactReader yields exactly n bytes of r, turning an early EOF into
// io.ErrUnexpectedEOF so a truncated transfer is never taken for a chunk.
type exactReader struct {
	r    io.Reader
	c    io.Closer
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case e.left == 0:
		return n, io.EOF
	case err == io.EOF:
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

func (e *exactReader) Close() error { return e.c.Close() }

// partPlan returns the part size used for size bytes: at least minPart,
// and large enough that no more than maxParts parts are needed.
func partPlan(size, partSize, minPart, maxParts int64) int64 {
	if partSize <= 0 {
		partSize = defaultPartSize
	}
	if partSize < minPart {
		partSize = minPart
	}
	if need := (size + maxParts - 1) / maxParts; partSize < need {
		partSize = (need + minPart - 1) / minPart * minPart
	}
	return partSize
}

const defaultPartSize = 16 << 20
