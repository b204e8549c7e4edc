package keys

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/twinroot/twinroot/internal/refusal"
)

// PEM block types and the one header of both key files.
const (
	PublicType  = "TWINROOT PUBLIC KEY"
	PrivateType = "TWINROOT PRIVATE KEY"
	idHeader    = "Key-Id"
)

// TrustedDir is where an image holds its trusted public keys, as a path
// inside the image: updater build bakes --trust keys there, and a device
// calls LoadTrusted on it (joined to its root).
const TrustedDir = "/usr/lib/twinroot/trusted"

// Errors callers act on.
var (
	// ErrInsecureKey: a private key file is readable or writable by group
	// or others.
	ErrInsecureKey = refusal.New("private key file is accessible by group or others")
	// ErrMalformedKey: a key file is not in the format of this package.
	ErrMalformedKey = refusal.New("malformed key file")
	// ErrExists: Save refuses to overwrite an existing key file.
	ErrExists = refusal.New("key file exists")
	// ErrNoTrustedKeys: a trusted key directory holds no public key.
	ErrNoTrustedKeys = refusal.New("no trusted public keys")
)

// ID returns the key id of an Ed25519 public key: the first 16 hex digits
// of its SHA-256.
func ID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// PublicKey is a public key with its key id.
type PublicKey struct {
	ID  string
	Key ed25519.PublicKey
}

// Verify reports whether sig is this key's signature of msg.
func (k PublicKey) Verify(msg, sig []byte) bool {
	return len(k.Key) == ed25519.PublicKeySize && ed25519.Verify(k.Key, msg, sig)
}

// PrivateKey is a signing key with its key id.
type PrivateKey struct {
	ID  string
	Key ed25519.PrivateKey
}

// Generate makes a new key pair from rand (crypto/rand when nil).
func Generate(r io.Reader) (*PrivateKey, error) {
	if r == nil {
		r = rand.Reader
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(r, seed); err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return FromSeed(seed)
}

// FromSeed returns the key pair of a 32-byte Ed25519 seed.
func FromSeed(seed []byte) (*PrivateKey, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: seed is %d bytes, want %d", ErrMalformedKey, len(seed), ed25519.SeedSize)
	}
	k := ed25519.NewKeyFromSeed(seed)
	return &PrivateKey{ID: ID(k.Public().(ed25519.PublicKey)), Key: k}, nil
}

// Public returns the public half.
func (k *PrivateKey) Public() PublicKey {
	return PublicKey{ID: k.ID, Key: k.Key.Public().(ed25519.PublicKey)}
}

// Sign signs msg.
func (k *PrivateKey) Sign(msg []byte) []byte { return ed25519.Sign(k.Key, msg) }

// MarshalText returns the NAME.pub file.
func (k PublicKey) MarshalText() ([]byte, error) {
	return pem.EncodeToMemory(&pem.Block{Type: PublicType, Headers: map[string]string{idHeader: k.ID}, Bytes: k.Key}), nil
}

// MarshalText returns the NAME.key file.
func (k *PrivateKey) MarshalText() ([]byte, error) {
	return pem.EncodeToMemory(&pem.Block{Type: PrivateType, Headers: map[string]string{idHeader: k.ID}, Bytes: k.Key.Seed()}), nil
}

// decode returns the one PEM block of a key file of type typ.
func decode(b []byte, typ string) (*pem.Block, error) {
	if !bytes.HasPrefix(bytes.TrimSpace(b), []byte("-----BEGIN ")) {
		return nil, fmt.Errorf("%w: does not start with a %s block", ErrMalformedKey, typ)
	}
	block, rest := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%w: no %s block", ErrMalformedKey, typ)
	}
	if block.Type != typ {
		return nil, fmt.Errorf("%w: block is %q, want %q", ErrMalformedKey, block.Type, typ)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: data after the %s block", ErrMalformedKey, typ)
	}
	for h := range block.Headers {
		if h != idHeader {
			return nil, fmt.Errorf("%w: unknown header %q", ErrMalformedKey, h)
		}
	}
	return block, nil
}

// checkID refuses a Key-Id header that is not the id of the key.
func checkID(block *pem.Block, pub ed25519.PublicKey) (string, error) {
	id := ID(pub)
	if got := block.Headers[idHeader]; got != id {
		return "", fmt.Errorf("%w: %s header %q, but the key's id is %s", ErrMalformedKey, idHeader, got, id)
	}
	return id, nil
}

// ParsePublic parses a NAME.pub file.
func ParsePublic(b []byte) (PublicKey, error) {
	block, err := decode(b, PublicType)
	if err != nil {
		return PublicKey{}, err
	}
	if len(block.Bytes) != ed25519.PublicKeySize {
		return PublicKey{}, fmt.Errorf("%w: public key is %d bytes, want %d", ErrMalformedKey, len(block.Bytes), ed25519.PublicKeySize)
	}
	pub := ed25519.PublicKey(block.Bytes)
	id, err := checkID(block, pub)
	if err != nil {
		return PublicKey{}, err
	}
	return PublicKey{ID: id, Key: pub}, nil
}

// ParsePrivate parses a NAME.key file.
func ParsePrivate(b []byte) (*PrivateKey, error) {
	block, err := decode(b, PrivateType)
	if err != nil {
		return nil, err
	}
	k, err := FromSeed(block.Bytes)
	if err != nil {
		return nil, err
	}
	if _, err := checkID(block, k.Key.Public().(ed25519.PublicKey)); err != nil {
		return nil, err
	}
	return k, nil
}

// LoadPublic reads a NAME.pub file.
func LoadPublic(path string) (PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return PublicKey{}, fmt.Errorf("read public key: %w", err)
	}
	k, err := ParsePublic(b)
	if err != nil {
		return PublicKey{}, fmt.Errorf("public key %s: %w", path, err)
	}
	return k, nil
}

// LoadPrivate reads a NAME.key file, refusing one that group or others may
// read or write.
func LoadPrivate(path string) (*PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	defer f.Close()
	// Stat the open file, not the path, so the mode checked is the mode of
	// the bytes read.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o, want 0600 (chmod 600 %s)", ErrInsecureKey, path, m, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("read private key %s: %w", path, err)
	}
	k, err := ParsePrivate(b)
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", path, err)
	}
	return k, nil
}

// Paths returns the two files of the key pair named base: base.key and
// base.pub. A base already ending in .key or .pub loses that suffix.
func Paths(base string) (private, public string) {
	base = strings.TrimSuffix(strings.TrimSuffix(base, ".key"), ".pub")
	return base + ".key", base + ".pub"
}

// Save writes the key pair named base (see Paths): the private key with
// mode 0600, the public key with mode 0644. It never overwrites a file; when
// the second file cannot be written the first is removed again.
func Save(base string, k *PrivateKey) (private, public string, err error) {
	private, public = Paths(base)
	priv, _ := k.MarshalText()
	pub, _ := k.Public().MarshalText()
	if err := create(private, priv, 0o600); err != nil {
		return "", "", err
	}
	if err := create(public, pub, 0o644); err != nil {
		os.Remove(private)
		return "", "", err
	}
	return private, public, nil
}

// create writes a new file; it fails when the file exists.
func create(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%w: %s; not overwritten", ErrExists, path)
	}
	if err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	// The umask may have narrowed the mode, never widened it; set it
	// exactly so a .pub is readable by the build.
	if err := f.Chmod(mode); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write key %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write key %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("write key %s: %w", path, err)
	}
	return nil
}

// Ring is a set of trusted public keys.
type Ring []PublicKey

// NewRing returns a ring of keys, refusing two different keys under one id.
func NewRing(ks ...PublicKey) (Ring, error) {
	var r Ring
	for _, k := range ks {
		if old, ok := r.Lookup(k.ID); ok {
			if !old.Key.Equal(k.Key) {
				return nil, fmt.Errorf("%w: two different keys with id %s", ErrMalformedKey, k.ID)
			}
			continue
		}
		r = append(r, k)
	}
	return r, nil
}

// Lookup returns the key with id.
func (r Ring) Lookup(id string) (PublicKey, bool) {
	i := slices.IndexFunc(r, func(k PublicKey) bool { return k.ID == id })
	if i < 0 {
		return PublicKey{}, false
	}
	return r[i], true
}

// IDs returns the key ids of the ring.
func (r Ring) IDs() []string {
	ids := make([]string, len(r))
	for i, k := range r {
		ids[i] = k.ID
	}
	return ids
}

// ParseTrusted parses the *.pub files among files (base names to contents,
// as read from an image's directory dir) into a ring, in name order; other
// files are ignored. A malformed one is an error naming dir/name. No .pub
// file at all is an empty ring: the caller says what that means.
func ParseTrusted(dir string, files map[string][]byte) (Ring, error) {
	var names []string
	for n := range files {
		if strings.HasSuffix(n, ".pub") {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	ks := make([]PublicKey, 0, len(names))
	for _, n := range names {
		k, err := ParsePublic(files[n])
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", dir, n, err)
		}
		ks = append(ks, k)
	}
	return NewRing(ks...)
}

// LoadTrusted reads every *.pub file of dir (an image's
// /usr/lib/twinroot/trusted/). A malformed .pub file is an error, not
// skipped: a device must not quietly trust fewer keys than its image says.
// Other files are ignored. A directory without keys is ErrNoTrustedKeys.
func LoadTrusted(dir string) (Ring, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.pub"))
	if err != nil {
		return nil, fmt.Errorf("trusted keys in %s: %w", dir, err)
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("trusted keys: %w", err)
	}
	var ks []PublicKey
	for _, p := range paths {
		k, err := LoadPublic(p)
		if err != nil {
			return nil, fmt.Errorf("trusted keys: %w", err)
		}
		ks = append(ks, k)
	}
	if len(ks) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNoTrustedKeys, dir)
	}
	return NewRing(ks...)
}
