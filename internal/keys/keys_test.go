package keys

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/twinroot/twinroot/internal/testfuzz"
)

func testKey(t *testing.T, b byte) *PrivateKey {
	t.Helper()
	k, err := FromSeed(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSaveLoadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	k, err := Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	priv, pub, err := Save(filepath.Join(dir, "release"), k)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := priv, filepath.Join(dir, "release.key"); got != want {
		t.Errorf("private path = %s, want %s", got, want)
	}
	for path, want := range map[string]os.FileMode{priv: 0o600, pub: 0o644} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("mode of %s = %04o, want %04o", path, got, want)
		}
	}
	k2, err := LoadPrivate(priv)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := LoadPublic(pub)
	if err != nil {
		t.Fatal(err)
	}
	if k2.ID != k.ID || !k2.Key.Equal(k.Key) || p2.ID != k.ID || !p2.Key.Equal(k.Public().Key) {
		t.Errorf("loaded keys differ: %s %s, want %s", k2.ID, p2.ID, k.ID)
	}
	if len(k.ID) != 16 {
		t.Errorf("key id %q: want 16 hex digits", k.ID)
	}
	// The key id is in both files, readable by a person.
	for _, path := range []string{priv, pub} {
		b, _ := os.ReadFile(path)
		if !strings.Contains(string(b), "Key-Id: "+k.ID) {
			t.Errorf("%s lacks its key id:\n%s", path, b)
		}
	}
	msg := []byte("manifest bytes")
	if !p2.Verify(msg, k2.Sign(msg)) {
		t.Error("signature of the loaded private key does not verify with the loaded public key")
	}
	// Save never overwrites.
	if _, _, err := Save(filepath.Join(dir, "release.key"), testKey(t, 1)); !errors.Is(err, ErrExists) {
		t.Errorf("second Save: %v, want ErrExists", err)
	}
	if k3, _ := LoadPrivate(priv); k3 == nil || k3.ID != k.ID {
		t.Error("second Save changed the existing key")
	}
}

func TestLoadPrivateRefusesLooseMode(t *testing.T) {
	dir := t.TempDir()
	priv, _, err := Save(filepath.Join(dir, "k"), testKey(t, 2))
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o660, 0o602} {
		if err := os.Chmod(priv, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadPrivate(priv)
		if !errors.Is(err, ErrInsecureKey) {
			t.Errorf("mode %04o: %v, want ErrInsecureKey", mode, err)
		} else if !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: error %q does not say how to fix it", mode, err)
		}
	}
	if err := os.Chmod(priv, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPrivate(priv); err != nil {
		t.Errorf("mode 0400: %v", err)
	}
}

func TestParseRefuses(t *testing.T) {
	k := testKey(t, 3)
	pub, _ := k.Public().MarshalText()
	priv, _ := k.MarshalText()
	other, _ := testKey(t, 4).Public().MarshalText()
	for name, b := range map[string][]byte{
		"empty":             nil,
		"private as public": priv,
		"wrong id":          bytes.Replace(pub, []byte(k.ID), []byte("0000000000000000"), 1),
		"no id":             bytes.Replace(pub, []byte("Key-Id: "+k.ID+"\n"), nil, 1),
		"extra header":      bytes.Replace(pub, []byte("Key-Id:"), []byte("Comment: x\nKey-Id:"), 1),
		"two blocks":        append(append([]byte{}, pub...), other...),
		"leading junk":      append([]byte("junk\n"), pub...),
		"short key":         []byte("-----BEGIN TWINROOT PUBLIC KEY-----\nKey-Id: " + k.ID + "\n\nAAAA\n-----END TWINROOT PUBLIC KEY-----\n"),
	} {
		if _, err := ParsePublic(b); !errors.Is(err, ErrMalformedKey) {
			t.Errorf("%s: %v, want ErrMalformedKey", name, err)
		}
	}
	if _, err := ParsePrivate(pub); !errors.Is(err, ErrMalformedKey) {
		t.Errorf("public as private: %v, want ErrMalformedKey", err)
	}
	if _, err := ParsePrivate(bytes.Replace(priv, []byte(k.ID), []byte(testKey(t, 4).ID), 1)); !errors.Is(err, ErrMalformedKey) {
		t.Errorf("private with another key's id: %v, want ErrMalformedKey", err)
	}
}

func TestLoadTrusted(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadTrusted(dir); !errors.Is(err, ErrNoTrustedKeys) {
		t.Errorf("empty dir: %v, want ErrNoTrustedKeys", err)
	}
	if _, err := LoadTrusted(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing dir: %v, want not exist", err)
	}
	a, b := testKey(t, 5), testKey(t, 6)
	if _, _, err := Save(filepath.Join(dir, "a"), a); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Save(filepath.Join(dir, "b"), b); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "README"), []byte("not a key"), 0o644)
	r, err := LoadTrusted(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(r) != 2 {
		t.Fatalf("ring has %d keys, want 2: %v", len(r), r.IDs())
	}
	for _, k := range []*PrivateKey{a, b} {
		if got, ok := r.Lookup(k.ID); !ok || !got.Key.Equal(k.Public().Key) {
			t.Errorf("key %s not in the ring", k.ID)
		}
	}
	// A broken .pub is an error, never a silently smaller ring.
	os.WriteFile(filepath.Join(dir, "c.pub"), []byte("garbage"), 0o644)
	if _, err := LoadTrusted(dir); !errors.Is(err, ErrMalformedKey) {
		t.Errorf("broken c.pub: %v, want ErrMalformedKey", err)
	}
}

// TestParseTrusted reads an image's key directory as image.Files hands it
// over: the .pub files in name order, other files ignored, a broken key an
// error naming it, none at all an empty ring.
func TestParseTrusted(t *testing.T) {
	a, b := testKey(t, 7), testKey(t, 8)
	pa, _ := a.Public().MarshalText()
	pb, _ := b.Public().MarshalText()
	r, err := ParseTrusted("/trusted", map[string][]byte{"b.pub": pb, "a.pub": pa, "README": []byte("not a key")})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.IDs(), []string{a.ID, b.ID}; !slices.Equal(got, want) {
		t.Errorf("ring %v, want %v (a.pub, then b.pub)", got, want)
	}
	_, err = ParseTrusted("/trusted", map[string][]byte{"a.pub": pa, "c.pub": []byte("garbage")})
	if !errors.Is(err, ErrMalformedKey) || !strings.Contains(err.Error(), "/trusted/c.pub") {
		t.Errorf("broken c.pub: %v, want ErrMalformedKey naming /trusted/c.pub", err)
	}
	if r, err := ParseTrusted("/trusted", map[string][]byte{"README": nil}); err != nil || len(r) != 0 {
		t.Errorf("no .pub file: %v, %v, want an empty ring", r.IDs(), err)
	}
}

func FuzzParsePublic(f *testing.F) {
	k, _ := FromSeed(bytes.Repeat([]byte{7}, 32))
	pub, _ := k.Public().MarshalText()
	priv, _ := k.MarshalText()
	testfuzz.Add(f, "public", pub)
	testfuzz.Add(f, "private", priv)
	testfuzz.Add(f, "empty-block", []byte("-----BEGIN TWINROOT PUBLIC KEY-----\n\n-----END TWINROOT PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if k, err := ParsePublic(b); err == nil {
			if k.ID != ID(k.Key) {
				t.Errorf("accepted key with id %s, key's id is %s", k.ID, ID(k.Key))
			}
			out, _ := k.MarshalText()
			if k2, err := ParsePublic(out); err != nil || k2.ID != k.ID {
				t.Errorf("re-encoded key does not parse: %v", err)
			}
		}
		if k, err := ParsePrivate(b); err == nil && k.ID != k.Public().ID {
			t.Errorf("private key id mismatch")
		}
	})
}
