package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"strings"
	"time"

	"github.com/twinroot/twinroot/internal/refusal"
)

// Schema is the manifest schema this package reads and writes.
const Schema = 1

// DefaultMaxSize is the largest signed or bare manifest document read when
// a Policy sets no MaxSize. A real one is about 1 KiB.
const DefaultMaxSize = 64 << 10

// Object names inside a release directory of the store
// (<prefix>/<channel>/<version>/) and of a build output directory.
const (
	ImageObject = "slot.img.zst"
	IndexObject = "chunks.idx"
	File        = "manifest.json"
	Latest      = "latest.json"
)

// Errors callers act on, one per acceptance rule of Verify (each refusal
// of Verify wraps exactly one), and refusal.ErrMismatch for CheckImage/CheckIndex.
var (
	ErrMalformed      = refusal.New("malformed manifest")
	ErrBadSignature   = refusal.New("bad signature")
	ErrUntrustedKey   = refusal.New("not signed by a trusted key")
	ErrWrongChannel   = refusal.New("wrong channel")
	ErrExpired        = refusal.New("manifest expired")
	ErrNotNewer       = refusal.New("not newer than the running release")
	ErrOlder          = refusal.New("older than the running release")
	ErrBelowMinSerial = refusal.New("serial below min_serial")
	ErrRollback       = refusal.New("rollback below the highest serial accepted")
	ErrBadVersion     = refusal.New("version recorded bad")
)

// Manifest is one release of a channel. See the package documentation for
// the JSON form and the meaning of each field.
type Manifest struct {
	Schema     int         `json:"schema"`
	Channel    string      `json:"channel,omitempty"`
	Version    string      `json:"version"`
	Serial     uint64      `json:"serial"`
	Created    time.Time   `json:"created,omitzero"`
	Expires    time.Time   `json:"expires,omitzero"`
	Image      Image       `json:"image"`
	Index      Index       `json:"index"`
	MinSerial  uint64      `json:"min_serial"`
	Rollout    *Rollout    `json:"rollout,omitempty"`
	Containers []Container `json:"containers,omitempty"`
}

// Image describes the slot image: its raw size and SHA-256 (what ends up
// in the slot) and the size of its compressed object.
type Image struct {
	Key            string `json:"key"`
	Size           int64  `json:"size"`
	SHA256         string `json:"sha256"`
	CompressedSize int64  `json:"compressed_size"`
}

// Index names the chunk index and its SHA-256.
type Index struct {
	Key    string `json:"key"`
	SHA256 string `json:"sha256"`
}

// Rollout spreads a release over devices: a device takes it between Start
// and Start+Duration, at a point fixed by the device (package rollout
// decides). StartPercent of the fleet may take it at once; while PausedAt
// is set, no device starts it.
type Rollout struct {
	Start        time.Time  `json:"start"`
	Duration     Duration   `json:"duration"`
	StartPercent float64    `json:"start_percent,omitempty"`
	PausedAt     *time.Time `json:"paused_at,omitempty"`
}

// Container names a bundled container image, for information.
type Container struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
}

// Duration is a time.Duration written in JSON as a Go duration string
// ("72h").
type Duration time.Duration

// MarshalText writes the duration as "72h0m0s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Keys returns the store keys of a version's image and index, relative to
// the channel directory: "<version>/slot.img.zst", "<version>/chunks.idx".
func Keys(version string) (image, index string) {
	return version + "/" + ImageObject, version + "/" + IndexObject
}

// Marshal returns the manifest as indented JSON ending in a newline: the
// exact bytes a signature covers.
func (m *Manifest) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("marshal manifest: %w", err)
	}
	return append(b, '\n'), nil
}

// Decode reads a bare manifest without checking that it is complete: the
// JSON must be strict (no unknown, duplicate or differently cased fields, no
// trailing data) and of a known schema. An unsigned build output lacks
// channel and expiry; Decode reads it, Parse does not.
func Decode(b []byte) (*Manifest, error) { return decode(b, DefaultMaxSize) }

func decode(b []byte, limit int) (*Manifest, error) {
	if len(b) > limit {
		return nil, fmt.Errorf("%w: document is %d bytes, limit %d", ErrMalformed, len(b), limit)
	}
	var probe struct {
		Schema json.RawMessage `json:"schema"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if s := string(probe.Schema); s != fmt.Sprint(Schema) {
		if s == "" {
			s = "missing"
		}
		return nil, fmt.Errorf("%w: unknown schema %s, this updater reads schema %d", ErrMalformed, s, Schema)
	}
	var m Manifest
	if err := strict(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// Parse reads a bare manifest and checks it is complete and well formed
// (Validate). It does not verify anything: devices call Verify.
func Parse(b []byte) (*Manifest, error) { return parse(b, DefaultMaxSize) }

func parse(b []byte, limit int) (*Manifest, error) {
	m, err := decode(b, limit)
	if err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

var (
	channelRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	sha256RE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// ValidChannel checks a channel name: 1 to 64 of [a-z0-9._-], starting
// with a letter or digit (it is a directory of the store).
func ValidChannel(c string) error {
	if !channelRE.MatchString(c) {
		return fmt.Errorf("channel %q: want 1 to 64 of a-z 0-9 . _ - starting with a letter or digit", c)
	}
	return nil
}

// Validate checks that every field a device relies on is present and well
// formed; it wraps ErrMalformed.
func (m *Manifest) Validate() error {
	if err := m.validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

func (m *Manifest) validate() error {
	if m.Schema != Schema {
		return fmt.Errorf("unknown schema %d, this updater reads schema %d", m.Schema, Schema)
	}
	if err := ValidChannel(m.Channel); err != nil {
		return err
	}
	if _, err := ParseVersion(m.Version); err != nil {
		return err
	}
	if m.Serial == 0 {
		return errors.New("serial must be at least 1")
	}
	if m.Created.IsZero() || m.Expires.IsZero() {
		return errors.New("created and expires are required")
	}
	if !m.Expires.After(m.Created) {
		return fmt.Errorf("expires %s is not after created %s", m.Expires.Format(time.RFC3339), m.Created.Format(time.RFC3339))
	}
	if err := validKey("image.key", m.Image.Key); err != nil {
		return err
	}
	if m.Image.Size <= 0 || m.Image.CompressedSize <= 0 {
		return errors.New("image.size and image.compressed_size must be positive")
	}
	if !sha256RE.MatchString(m.Image.SHA256) {
		return fmt.Errorf("image.sha256 %q is not 64 lowercase hex digits", m.Image.SHA256)
	}
	if err := validKey("index.key", m.Index.Key); err != nil {
		return err
	}
	if !sha256RE.MatchString(m.Index.SHA256) {
		return fmt.Errorf("index.sha256 %q is not 64 lowercase hex digits", m.Index.SHA256)
	}
	if r := m.Rollout; r != nil {
		switch {
		case r.Start.IsZero() || r.Duration < 0:
			return errors.New("rollout needs a start and a duration of at least 0")
		case !(r.StartPercent >= 0 && r.StartPercent <= 100):
			return fmt.Errorf("rollout start_percent %v is not between 0 and 100", r.StartPercent)
		case r.PausedAt != nil && r.PausedAt.IsZero():
			return errors.New("rollout paused_at is not a time")
		}
	}
	for i, c := range m.Containers {
		if c.Name == "" || c.Digest == "" {
			return fmt.Errorf("containers[%d] needs a name and a digest", i)
		}
	}
	return nil
}

// validKey checks an object key relative to the channel directory: a
// clean slash-separated path that cannot leave it.
func validKey(field, k string) error {
	if !fs.ValidPath(k) || k == "." || strings.ContainsAny(k, "\\\x00") {
		return fmt.Errorf("%s %q is not a clean relative path", field, k)
	}
	for _, c := range k {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("%s %q has a control character", field, k)
		}
	}
	return nil
}

// strict decodes one JSON object into v refusing unknown fields, trailing
// data, and duplicate or upper-case keys. Go's decoder matches field names
// case-insensitively and keeps the last of duplicates; refusing both keeps
// every JSON reader of the signed bytes seeing the same manifest.
func strict(b []byte, v any) error {
	if err := checkKeys(b); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: data after the JSON document", ErrMalformed)
	}
	return nil
}

// checkKeys walks the JSON tokens of b and refuses an object with a
// duplicate key or a key with an upper-case letter.
func checkKeys(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	type frame struct {
		object bool
		key    bool // the next token of an object is a key
		seen   map[string]bool
	}
	var stack []*frame
	for {
		t, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.key {
			if d, ok := t.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			k := t.(string) // the decoder only yields strings as keys
			if k != strings.ToLower(k) {
				return fmt.Errorf("key %q is not lower case", k)
			}
			if top.seen[k] {
				return fmt.Errorf("duplicate key %q", k)
			}
			top.seen[k] = true
			top.key = false
			continue
		}
		if top != nil && top.object {
			top.key = true
		}
		switch t {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, key: true, seen: map[string]bool{}})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
	}
}

// CheckImage reads the raw slot image from r and checks its size and
// SHA-256 against the manifest.
func (m *Manifest) CheckImage(r io.Reader) error {
	return check("image", r, m.Image.Size, m.Image.SHA256)
}

// CheckIndex reads the chunk index from r and checks its SHA-256 against
// the manifest.
func (m *Manifest) CheckIndex(r io.Reader) error {
	return check("index", r, -1, m.Index.SHA256)
}

func check(what string, r io.Reader, size int64, sum string) error {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return fmt.Errorf("hash %s: %w", what, err)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("%w: %s is %d bytes, manifest says %d", refusal.ErrMismatch, what, n, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return fmt.Errorf("%w: %s has SHA-256 %s, manifest says %s", refusal.ErrMismatch, what, got, sum)
	}
	return nil
}
