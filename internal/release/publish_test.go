package release

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/twinroot/twinroot/image"
	"github.com/twinroot/twinroot/internal/chunk"
	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/manifest"
	"github.com/twinroot/twinroot/internal/refusal"
	"github.com/twinroot/twinroot/internal/s3test"
	"github.com/twinroot/twinroot/internal/source"
)

type fixture struct {
	root string
	key  *keys.PrivateKey
	pub  string
	ring keys.Ring
}

func newFixture(t *testing.T) fixture {
	k, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, pub, err := keys.Save(filepath.Join(t.TempDir(), "release"), k)
	if err != nil {
		t.Fatal(err)
	}
	ring, _ := keys.NewRing(k.Public())
	return fixture{root: testRoot(t), key: k, pub: pub, ring: ring}
}

func (f fixture) build(t *testing.T, version string, serial uint64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "v"+version)
	os.WriteFile(filepath.Join(f.root, "etc-release"), []byte(version), 0o644)
	if _, err := Build(context.Background(), BuildOptions{Image: image.BuildOptions{Rootfs: f.root, Trust: []string{f.pub}, Version: version, Serial: serial}, Out: dir}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func list(t *testing.T, st source.Store) []source.Object {
	t.Helper()
	objs, err := st.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// stores returns a writable store of each kind: MinIO, versitygw and file://.
func stores(t *testing.T) map[string]func(t *testing.T) (source.Store, *s3test.Server) {
	m := map[string]func(t *testing.T) (source.Store, *s3test.Server){
		"file": func(t *testing.T) (source.Store, *s3test.Server) {
			st, err := source.OpenStore(context.Background(), "file://"+t.TempDir(), source.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return st, nil
		},
	}
	for _, kind := range s3test.Kinds {
		m[kind] = func(t *testing.T) (source.Store, *s3test.Server) {
			srv := s3test.Start(t, kind)
			st, err := source.OpenStore(context.Background(), srv.URL("releases"), source.Options{Endpoint: srv.Endpoint, Region: srv.Region, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
			if err != nil {
				t.Fatal(err)
			}
			return st, srv
		}
	}
	return m
}

func TestPublishVerify(t *testing.T) {
	f := newFixture(t)
	v1, v2, old := f.build(t, "1.0.0", 10), f.build(t, "1.1.0", 11), f.build(t, "0.9.0", 9)
	for kind, open := range stores(t) {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			st, srv := open(t)
			opts := func(dir string) PublishOptions {
				return PublishOptions{Dir: dir, Channel: "stable", Signers: []*keys.PrivateKey{f.key}, TTL: time.Hour, PartSize: 5 << 20, Parallel: 3}
			}
			r, err := Publish(ctx, st, opts(v1))
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"stable/1.0.0/slot.img.zst", "stable/1.0.0/chunks.idx", "stable/1.0.0/manifest.json", "stable/latest.json"}
			if diff := cmp.Diff(want, r.Objects); diff != "" {
				t.Errorf("published objects (-want +got):\n%s", diff)
			}
			vr, err := Verify(ctx, st, VerifyOptions{Channel: "stable", Trusted: f.ring})
			if err != nil {
				t.Fatal(err)
			}
			if vr.Manifest.Version != "1.0.0" || vr.Chunks == 0 {
				t.Errorf("Verify = %+v", vr)
			}
			if srv != nil {
				// An outside client sees and fetches what publish wrote.
				out := string(srv.AWS(t, "s3", "ls", "--recursive", "s3://"+srv.Bucket+"/releases/"))
				for _, o := range want {
					if !strings.Contains(out, "releases/"+o) {
						t.Errorf("aws s3 ls lacks %s:\n%s", o, out)
					}
				}
				dl := filepath.Join(t.TempDir(), "obj")
				srv.AWS(t, "s3", "cp", "s3://"+srv.Bucket+"/releases/stable/1.0.0/slot.img.zst", dl)
				a, _ := os.ReadFile(dl)
				b, _ := os.ReadFile(filepath.Join(v1, ObjectFile))
				if !bytes.Equal(a, b) {
					t.Error("aws s3 cp downloaded other bytes than publish uploaded")
				}
			}
			// The same version again, and an older one: refused, store unchanged.
			before := list(t, st)
			for _, dir := range []string{v1, old} {
				if _, err := Publish(ctx, st, opts(dir)); !errors.Is(err, manifest.ErrNotNewer) {
					t.Errorf("Publish(%s) = %v, want ErrNotNewer", filepath.Base(dir), err)
				}
			}
			if diff := cmp.Diff(before, list(t, st)); diff != "" {
				t.Errorf("a refused publish changed the store (-before +after):\n%s", diff)
			}
			if _, err := Publish(ctx, st, opts(v2)); err != nil {
				t.Fatal(err)
			}
			if vr, err := Verify(ctx, st, VerifyOptions{Channel: "stable", Trusted: f.ring}); err != nil || vr.Manifest.Version != "1.1.0" {
				t.Errorf("Verify after v1.1.0 = %+v, %v", vr.Manifest, err)
			}
			if _, err := Verify(ctx, st, VerifyOptions{Channel: "stable", Version: "1.0.0", Trusted: f.ring}); err != nil {
				t.Errorf("Verify of 1.0.0 by version: %v", err)
			}
			other, _ := keys.Generate(nil)
			ring, _ := keys.NewRing(other.Public())
			if _, err := Verify(ctx, st, VerifyOptions{Channel: "stable", Trusted: ring}); !errors.Is(err, manifest.ErrUntrustedKey) {
				t.Errorf("Verify with another key = %v, want ErrUntrustedKey", err)
			}
		})
	}
}

// TestVerifyFindsTampering flips one byte of a published object and of the
// index, in a file:// store, and expects the error to name what is wrong.
func TestVerifyFindsTampering(t *testing.T) {
	f := newFixture(t)
	v1 := f.build(t, "1.0.0", 1)
	dir := t.TempDir()
	st, err := source.OpenStore(context.Background(), "file://"+dir, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Publish(context.Background(), st, PublishOptions{Dir: v1, Channel: "stable", Signers: []*keys.PrivateKey{f.key}, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	flip := func(path string, off int64) func() {
		b, _ := os.ReadFile(path)
		orig := append([]byte(nil), b...)
		b[off] ^= 0x40
		os.WriteFile(path, b, 0o644)
		return func() { os.WriteFile(path, orig, 0o644) }
	}
	obj := filepath.Join(dir, "stable/1.0.0/slot.img.zst")
	fi, _ := os.Stat(obj)
	undo := flip(obj, fi.Size()/2)
	_, err = Verify(context.Background(), st, VerifyOptions{Channel: "stable", Trusted: f.ring})
	if !errors.Is(err, chunk.ErrCorrupt) || !strings.Contains(err.Error(), "chunk ") {
		t.Errorf("Verify of a flipped object byte = %v, want ErrCorrupt naming the chunk", err)
	}
	undo()
	undo = flip(filepath.Join(dir, "stable/1.0.0/chunks.idx"), 40)
	if _, err := Verify(context.Background(), st, VerifyOptions{Channel: "stable", Trusted: f.ring}); !errors.Is(err, refusal.ErrMismatch) || !strings.Contains(err.Error(), "chunks.idx") {
		t.Errorf("Verify of a flipped index byte = %v, want ErrMismatch naming chunks.idx", err)
	}
	undo()
	if _, err := Verify(context.Background(), st, VerifyOptions{Channel: "stable", Trusted: f.ring}); err != nil {
		t.Errorf("Verify after undoing = %v", err)
	}
	flip(filepath.Join(dir, "stable/latest.json"), 30)
	if _, err := Verify(context.Background(), st, VerifyOptions{Channel: "stable", Trusted: f.ring}); err == nil {
		t.Error("Verify accepted a flipped latest.json")
	}
}
