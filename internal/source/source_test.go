package source_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/twinroot/twinroot/internal/s3test"
	"github.com/twinroot/twinroot/internal/source"
)

// countingTransport counts the response body bytes that reach the client,
// to show that a conditional GET transfers no body.
type countingTransport struct {
	base http.RoundTripper
	n    atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(r)
	if resp != nil && resp.Body != nil {
		resp.Body = &countingBody{ReadCloser: resp.Body, n: &c.n}
	}
	return resp, err
}

func (c *countingTransport) reset() {
	if c != nil {
		c.n.Store(0)
	}
}

func (c *countingTransport) get() int64 {
	if c == nil {
		return 0
	}
	return c.n.Load()
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// backend is one kind of release store under test.
type backend struct {
	name    string
	src     source.Source
	store   source.Store       // nil for read-only sources
	counter *countingTransport // nil where no HTTP is involved
	s3      *s3test.Server     // nil unless an S3 server
	seed    func(t *testing.T, key string, data []byte)
}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(b)
	return b
}

func newS3Backend(t *testing.T, kind string) backend {
	srv := s3test.Start(t, kind)
	counter := &countingTransport{base: http.DefaultTransport}
	opts := source.Options{
		Endpoint: srv.Endpoint, Region: srv.Region,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey,
		HTTPClient: &http.Client{Transport: counter},
	}
	st, err := source.OpenStore(t.Context(), srv.URL("releases"), opts)
	if err != nil {
		t.Fatal(err)
	}
	return backend{name: kind, src: st, store: st, counter: counter, s3: srv,
		seed: func(t *testing.T, key string, data []byte) {
			if err := st.PutIfAbsent(t.Context(), key, bytes.NewReader(data), int64(len(data))); err != nil {
				t.Fatal(err)
			}
		}}
}

func newFileBackend(t *testing.T) backend {
	dir := t.TempDir()
	st, err := source.OpenStore(t.Context(), "file://"+dir, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return backend{name: "file", src: st, store: st,
		seed: func(t *testing.T, key string, data []byte) {
			if err := st.PutIfAbsent(t.Context(), key, bytes.NewReader(data), int64(len(data))); err != nil {
				t.Fatal(err)
			}
		}}
}

// newHTTPSBackend serves a directory over TLS with http.FileServer, which
// answers Range and, once an ETag header is set, If-None-Match.
func newHTTPSBackend(t *testing.T) backend {
	dir := t.TempDir()
	files := http.FileServer(http.Dir(dir))
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(r.URL.Path))); err == nil {
			sum := sha256.Sum256(b)
			w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:8])+`"`)
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	tlsClient := srv.Client()
	counter := &countingTransport{base: tlsClient.Transport}
	src, err := source.Open(t.Context(), srv.URL+"/releases", source.Options{HTTPClient: &http.Client{Transport: counter}})
	if err != nil {
		t.Fatal(err)
	}
	return backend{name: "https", src: src, counter: counter,
		seed: func(t *testing.T, key string, data []byte) {
			p := filepath.Join(dir, "releases", filepath.FromSlash(key))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}}
}

type backendMaker struct {
	name string
	make func(*testing.T) backend
}

// backends lists the stores (S3 servers and file://), plus the read-only
// https source unless only stores are wanted.
func backends(storesOnly bool) []backendMaker {
	all := []backendMaker{
		{"minio", func(t *testing.T) backend { return newS3Backend(t, "minio") }},
		{"versitygw", func(t *testing.T) backend { return newS3Backend(t, "versitygw") }},
		{"file", newFileBackend},
	}
	if !storesOnly {
		all = append(all, backendMaker{"https", newHTTPSBackend})
	}
	return all
}

func readAll(t *testing.T, rc io.ReadCloser) []byte {
	t.Helper()
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSource runs the reading side over every kind of store.
func TestSource(t *testing.T) {
	for _, bm := range backends(false) {
		t.Run(bm.name, func(t *testing.T) {
			b := bm.make(t)
			ctx := t.Context()
			data := randomBytes(1, 300<<10)
			b.seed(t, "stable/1.0.0/slot.img.zst", data)
			b.seed(t, "stable/latest.json", []byte(`{"version":"1.0.0"}`))

			b.counter.reset()
			body, etag, err := b.src.Get(ctx, "stable/1.0.0/slot.img.zst", "")
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, body); !bytes.Equal(got, data) {
				t.Fatalf("Get returned %d bytes, not the %d stored", len(got), len(data))
			}
			if etag == "" {
				t.Fatal("Get returned no ETag")
			}
			if b.counter != nil && b.counter.get() < int64(len(data)) {
				t.Fatalf("counter saw %d body bytes for a %d-byte Get: the counter does not count", b.counter.get(), len(data))
			}

			// Conditional GET of an unchanged object: ErrNotModified and
			// not one body byte on the wire.
			b.counter.reset()
			if _, _, err := b.src.Get(ctx, "stable/1.0.0/slot.img.zst", etag); !errors.Is(err, source.ErrNotModified) {
				t.Fatalf("conditional Get with the current ETag: err = %v, want ErrNotModified", err)
			}
			if n := b.counter.get(); n != 0 {
				t.Errorf("conditional Get transferred %d body bytes, want 0", n)
			}
			// A stale ETag gets the body.
			body, etag2, err := b.src.Get(ctx, "stable/1.0.0/slot.img.zst", `"stale"`)
			if err != nil {
				t.Fatalf("conditional Get with a stale ETag: %v", err)
			}
			if got := readAll(t, body); !bytes.Equal(got, data) || etag2 != etag {
				t.Errorf("conditional Get with a stale ETag: %d bytes, ETag %s; want %d bytes, ETag %s", len(got), etag2, len(data), etag)
			}

			size, statETag, err := b.src.Stat(ctx, "stable/1.0.0/slot.img.zst")
			if err != nil {
				t.Fatal(err)
			}
			if size != int64(len(data)) || statETag != etag {
				t.Errorf("Stat = %d, %s; want %d, %s", size, statETag, len(data), etag)
			}

			for _, r := range []struct{ off, n int64 }{{0, 1}, {12345, 65536}, {int64(len(data)) - 100, 100}, {0, int64(len(data))}} {
				b.counter.reset()
				rc, err := b.src.GetRange(ctx, "stable/1.0.0/slot.img.zst", r.off, r.n)
				if err != nil {
					t.Fatalf("GetRange(%d, %d): %v", r.off, r.n, err)
				}
				if got, want := readAll(t, rc), data[r.off:r.off+r.n]; !bytes.Equal(got, want) {
					t.Errorf("GetRange(%d, %d) returned %d bytes that differ from the stored ones", r.off, r.n, len(got))
				}
				if n := b.counter.get(); b.counter != nil && n != r.n {
					t.Errorf("GetRange(%d, %d) transferred %d body bytes, want %d", r.off, r.n, n, r.n)
				}
			}
			for _, r := range []struct{ off, n int64 }{{int64(len(data)) - 10, 20}, {int64(len(data)) + 5, 10}} {
				rc, err := b.src.GetRange(ctx, "stable/1.0.0/slot.img.zst", r.off, r.n)
				if err == nil {
					rc.Close()
				}
				if !errors.Is(err, source.ErrRange) {
					t.Errorf("GetRange(%d, %d) past the end (size %d): err = %v, want ErrRange", r.off, r.n, len(data), err)
				}
			}

			for _, op := range []struct {
				name string
				f    func() error
			}{
				{"Get", func() error { _, _, err := b.src.Get(ctx, "stable/9.9.9/missing", ""); return err }},
				{"Stat", func() error { _, _, err := b.src.Stat(ctx, "stable/9.9.9/missing"); return err }},
				{"GetRange", func() error { _, err := b.src.GetRange(ctx, "stable/9.9.9/missing", 0, 10); return err }},
			} {
				if err := op.f(); !errors.Is(err, source.ErrNotFound) {
					t.Errorf("%s of a missing key: err = %v, want ErrNotFound", op.name, err)
				}
			}
			for _, key := range []string{"../secret", "/abs", "a/../../b", ""} {
				if _, _, err := b.src.Get(ctx, key, ""); err == nil || errors.Is(err, source.ErrNotFound) {
					t.Errorf("Get(%q) = %v, want a refused key", key, err)
				}
			}
		})
	}
}

// TestStore runs the publishing side over S3 servers and file://.
func TestStore(t *testing.T) {
	for _, bm := range backends(true) {
		t.Run(bm.name, func(t *testing.T) {
			b := bm.make(t)
			ctx := t.Context()
			st := b.store

			// PutIfAbsent twice: the second is refused and the first stays.
			first, second := []byte(`{"serial":1}`), []byte(`{"serial":2,"longer":true}`)
			if err := st.PutIfAbsent(ctx, "stable/1.0.0/manifest.json", bytes.NewReader(first), int64(len(first))); err != nil {
				t.Fatal(err)
			}
			err := st.PutIfAbsent(ctx, "stable/1.0.0/manifest.json", bytes.NewReader(second), int64(len(second)))
			if !errors.Is(err, source.ErrExists) {
				t.Fatalf("second PutIfAbsent: err = %v, want ErrExists", err)
			}
			body, _, err := st.Get(ctx, "stable/1.0.0/manifest.json", "")
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, body); !bytes.Equal(got, first) {
				t.Errorf("after a refused PutIfAbsent the object is %q, want %q", got, first)
			}
			// A plain io.Reader (not seekable) goes up too.
			if err := st.PutIfAbsent(ctx, "stable/stream", io.MultiReader(strings.NewReader("abc"), strings.NewReader("def")), 6); err != nil {
				t.Fatalf("PutIfAbsent of a stream: %v", err)
			}

			// Concurrent create-only writes of one key: exactly one wins.
			var wg sync.WaitGroup
			var won, lost atomic.Int32
			for w := range 6 {
				wg.Go(func() {
					d := []byte(fmt.Sprintf("writer %d", w))
					switch err := st.PutIfAbsent(ctx, "stable/race", bytes.NewReader(d), int64(len(d))); {
					case err == nil:
						won.Add(1)
					case errors.Is(err, source.ErrExists):
						lost.Add(1)
					default:
						t.Errorf("racing PutIfAbsent: %v", err)
					}
				})
			}
			wg.Wait()
			if won.Load() != 1 || lost.Load() != 5 {
				t.Errorf("6 racing PutIfAbsent: %d won, %d got ErrExists; want 1 and 5", won.Load(), lost.Load())
			}

			// Put writes, and writes over, with no condition.
			for _, d := range [][]byte{[]byte(`{"event":"applied"}`), []byte(`{"event":"committed"}`)} {
				if err := st.Put(ctx, "reports/stable/2.0.0/dev.json", bytes.NewReader(d), int64(len(d))); err != nil {
					t.Fatalf("Put %s: %v", d, err)
				}
				body, _, err := st.Get(ctx, "reports/stable/2.0.0/dev.json", "")
				if err != nil {
					t.Fatal(err)
				}
				if got := readAll(t, body); !bytes.Equal(got, d) {
					t.Errorf("after Put the object is %q, want %q", got, d)
				}
			}
			if err := st.Put(ctx, "../outside", strings.NewReader("x"), 1); err == nil {
				t.Error("Put of a key outside the store succeeded")
			}

			// Replace is a compare-and-swap on the ETag.
			v1 := []byte(`{"latest":"1.0.0"}`)
			if err := st.Replace(ctx, "stable/latest.json", bytes.NewReader(v1), int64(len(v1)), ""); err != nil {
				t.Fatal(err)
			}
			_, etag1, err := st.Stat(ctx, "stable/latest.json")
			if err != nil {
				t.Fatal(err)
			}
			v2 := []byte(`{"latest":"1.1.0"}`)
			if err := st.Replace(ctx, "stable/latest.json", bytes.NewReader(v2), int64(len(v2)), etag1); err != nil {
				t.Fatalf("Replace with the current ETag: %v", err)
			}
			v3 := []byte(`{"latest":"0.9.0"}`)
			if err := st.Replace(ctx, "stable/latest.json", bytes.NewReader(v3), int64(len(v3)), etag1); !errors.Is(err, source.ErrChanged) {
				t.Errorf("Replace with a stale ETag: err = %v, want ErrChanged", err)
			}
			if err := st.Replace(ctx, "stable/latest.json", bytes.NewReader(v3), int64(len(v3)), ""); !errors.Is(err, source.ErrExists) {
				t.Errorf("Replace expecting no object: err = %v, want ErrExists", err)
			}
			body, _, err = st.Get(ctx, "stable/latest.json", "")
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, body); !bytes.Equal(got, v2) {
				t.Errorf("latest.json = %q, want %q", got, v2)
			}

			// Multipart upload of ~40 MiB with parallel parts.
			big := randomBytes(2, 40<<20+12345)
			path := filepath.Join(t.TempDir(), "slot.img.zst")
			if err := os.WriteFile(path, big, 0o644); err != nil {
				t.Fatal(err)
			}
			fh, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			start := time.Now()
			if err := st.Upload(ctx, "stable/1.0.0/slot.img.zst", fh, int64(len(big)), 8<<20, 4); err != nil {
				t.Fatalf("Upload: %v", err)
			}
			elapsed := time.Since(start)
			t.Logf("%s: uploaded %d MiB in %v (%.0f MiB/s)", b.name, len(big)>>20, elapsed.Round(time.Millisecond), float64(len(big))/(1<<20)/elapsed.Seconds())
			if err := st.Upload(ctx, "stable/1.0.0/slot.img.zst", fh, int64(len(big)), 8<<20, 4); !errors.Is(err, source.ErrExists) {
				t.Errorf("second Upload: err = %v, want ErrExists", err)
			}
			body, _, err = st.Get(ctx, "stable/1.0.0/slot.img.zst", "")
			if err != nil {
				t.Fatal(err)
			}
			if got, want := sha256.Sum256(readAll(t, body)), sha256.Sum256(big); got != want {
				t.Errorf("uploaded object hashes to %x, want %x", got, want)
			}

			objs, err := st.List(ctx, "stable/1.0.0/")
			if err != nil {
				t.Fatal(err)
			}
			want := []source.Object{
				{Key: "stable/1.0.0/manifest.json", Size: int64(len(first))},
				{Key: "stable/1.0.0/slot.img.zst", Size: int64(len(big))},
			}
			if diff := cmp.Diff(want, objs, cmpIgnoreETag); diff != "" {
				t.Errorf("List(stable/1.0.0/) (-want +got):\n%s", diff)
			}
			all, err := st.List(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, o := range all {
				keys = append(keys, o.Key)
			}
			if diff := cmp.Diff([]string{"reports/stable/2.0.0/dev.json", "stable/1.0.0/manifest.json", "stable/1.0.0/slot.img.zst", "stable/latest.json", "stable/race", "stable/stream"}, keys); diff != "" {
				t.Errorf("List() keys (-want +got):\n%s", diff)
			}

			if b.s3 != nil {
				checkWithAWSCLI(t, b.s3, big)
			}
		})
	}
}

var cmpIgnoreETag = cmp.Comparer(func(a, b source.Object) bool { return a.Key == b.Key && a.Size == b.Size })

// checkWithAWSCLI lists and downloads what Upload wrote with the aws CLI,
// an outside client.
func checkWithAWSCLI(t *testing.T, srv *s3test.Server, big []byte) {
	out := string(srv.AWS(t, "s3", "ls", "--recursive", srv.URL("releases/stable/")))
	if !strings.Contains(out, fmt.Sprintf("%d releases/stable/1.0.0/slot.img.zst", len(big))) {
		t.Errorf("aws s3 ls does not show the uploaded image with its size %d:\n%s", len(big), out)
	}
	dst := filepath.Join(t.TempDir(), "download")
	srv.AWS(t, "s3", "cp", "--only-show-errors", srv.URL("releases/stable/1.0.0/slot.img.zst"), dst)
	got, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(big) {
		t.Errorf("aws s3 cp downloaded %d bytes that differ from the %d uploaded", len(got), len(big))
	}
	// A failed or refused upload must not leave parts behind.
	if out := srv.AWS(t, "s3api", "list-multipart-uploads", "--bucket", srv.Bucket, "--output", "text"); strings.Contains(string(out), "UPLOADS") {
		t.Errorf("unfinished multipart uploads left behind:\n%s", out)
	}
}

func TestOpenRefuses(t *testing.T) {
	ctx := t.Context()
	for _, u := range []string{
		"ftp://host/x", "s3:///prefix", "https:///x", "file://host/x", "file://relative",
		"s3://bucket/a/../b", "https://user:pw@host/x", "s3://bucket/x?versionId=1", "no-scheme",
	} {
		if _, err := source.Open(ctx, u, source.Options{}); err == nil {
			t.Errorf("Open(%q) succeeded, want a refusal", u)
		}
	}
	if _, err := source.OpenStore(ctx, "https://example.invalid/x", source.Options{}); !errors.Is(err, source.ErrReadOnly) {
		t.Errorf("OpenStore(https) err = %v, want ErrReadOnly", err)
	}
	if _, err := source.Open(ctx, "file://"+filepath.Join(t.TempDir(), "missing"), source.Options{}); err == nil {
		t.Error("Open of a missing directory succeeded")
	}
}
