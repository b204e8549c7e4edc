package manifest

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/refusal"
)

// Envelope is a signed manifest: the exact manifest bytes and the
// signatures over them.
type Envelope struct {
	Manifest   []byte      `json:"manifest"`
	Signatures []Signature `json:"signatures"`
}

// Signature is an Ed25519 signature of the manifest bytes by the key with
// KeyID.
type Signature struct {
	KeyID string `json:"key_id"`
	Sig   []byte `json:"sig"`
}

// Sign wraps a bare manifest in an envelope signed by every signer (two
// during a key rotation). It refuses a manifest Parse refuses, so nothing
// incomplete is ever signed.
func Sign(manifest []byte, signers ...*keys.PrivateKey) ([]byte, error) {
	if len(signers) == 0 {
		return nil, errors.New("sign manifest: no signing key")
	}
	if _, err := Parse(manifest); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	e := Envelope{Manifest: manifest}
	for _, k := range signers {
		e.Signatures = append(e.Signatures, Signature{KeyID: k.ID, Sig: k.Sign(manifest)})
	}
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return append(b, '\n'), nil
}

// IsSigned tells a signed envelope from a bare manifest (or anything else)
// by its top-level keys, without verifying it.
func IsSigned(b []byte) bool {
	var probe map[string]json.RawMessage
	if json.Unmarshal(b, &probe) != nil {
		return false
	}
	_, ok := probe["manifest"]
	_, sigs := probe["signatures"]
	return ok && sigs
}

// ParseEnvelope reads a signed envelope WITHOUT verifying it; only signers
// that re-sign their own build output use it. Everything that acts on a
// manifest calls Verify.
func ParseEnvelope(b []byte) (*Envelope, error) {
	return parseEnvelope(b, DefaultMaxSize)
}

func parseEnvelope(b []byte, limit int) (*Envelope, error) {
	if len(b) > limit {
		return nil, fmt.Errorf("%w: document is %d bytes, limit %d", ErrMalformed, len(b), limit)
	}
	var e Envelope
	if err := strict(b, &e); err != nil {
		return nil, err
	}
	if len(e.Manifest) == 0 {
		return nil, fmt.Errorf("%w: envelope has no manifest", ErrMalformed)
	}
	for i, s := range e.Signatures {
		if !keyIDRE.MatchString(s.KeyID) || len(s.Sig) != ed25519.SignatureSize {
			return nil, fmt.Errorf("%w: signatures[%d] needs a key_id of 16 hex digits and a %d-byte sig", ErrMalformed, i, ed25519.SignatureSize)
		}
	}
	return &e, nil
}

var keyIDRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

// ErrUnsigned is a bare manifest where a signed one is needed.
var ErrUnsigned = fmt.Errorf("%w: the manifest is not signed (sign it with `updater sign`)", ErrBadSignature)

// Policy is what a device knows when it judges a manifest.
type Policy struct {
	// Trusted are the keys baked into the running image.
	Trusted keys.Ring
	// Channel is the device's channel; required.
	Channel string
	// Now is the time to judge expiry by; zero means time.Now().
	Now time.Time
	// RunningSerial is the serial of the running release.
	RunningSerial uint64
	// HighestSeen is the highest serial the device ever accepted.
	HighestSeen uint64
	// MinSerial is the highest min_serial of any manifest the device
	// accepted before: a floor a publisher raised stays raised even when a
	// later (or replayed) manifest carries a lower one.
	MinSerial uint64
	// BadVersions are the versions recorded bad after a fallback.
	BadVersions []string
	// SlotSize is the size of a slot in bytes; 0 skips the check (a build
	// host has no slot).
	SlotSize int64
	// MaxSize bounds the signed document; 0 means DefaultMaxSize.
	MaxSize int
}

// Verify is the one check every reader of a signed manifest makes. It
// returns the manifest only when every acceptance rule holds, checked in
// this order: document size and form (ErrMalformed), signatures
// (ErrBadSignature, ErrUntrustedKey), channel (ErrWrongChannel), expiry
// (ErrExpired), serial >= running (ErrOlder), serial > running (ErrNotNewer: the
// same release, up to date), serial >= min_serial of the
// manifest and of the policy (ErrBelowMinSerial), serial >= highest
// accepted (ErrRollback), version not bad (ErrBadVersion), image size <=
// slot size (refusal.ErrDoesNotFit). Its error is one line naming the rule.
func Verify(signed []byte, p Policy) (*Manifest, error) {
	if p.Channel == "" {
		return nil, errors.New("verify manifest: the policy names no channel")
	}
	limit := p.MaxSize
	if limit <= 0 {
		limit = DefaultMaxSize
	}
	if len(signed) <= limit {
		if _, err := decode(signed, limit); err == nil {
			return nil, ErrUnsigned
		}
	}
	e, err := parseEnvelope(signed, limit)
	if err != nil {
		return nil, err
	}
	if err := verifySignatures(e, p.Trusted); err != nil {
		return nil, err
	}
	// Only bytes a trusted key signed are parsed past the envelope.
	m, err := parse(e.Manifest, limit)
	if err != nil {
		return nil, err
	}
	now := p.Now
	if now.IsZero() {
		now = time.Now()
	}
	floor := max(m.MinSerial, p.MinSerial)
	switch {
	case m.Channel != p.Channel:
		return nil, fmt.Errorf("%w: manifest is for channel %q, device follows %q", ErrWrongChannel, m.Channel, p.Channel)
	case !now.Before(m.Expires):
		return nil, fmt.Errorf("%w: %s %s expired at %s (now %s); the channel is stale, ask its publisher to re-sign",
			ErrExpired, m.Channel, m.Version, m.Expires.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case m.Serial < p.RunningSerial:
		return nil, fmt.Errorf("%w: serial %d (%s) is below the running serial %d", ErrOlder, m.Serial, m.Version, p.RunningSerial)
	case m.Serial == p.RunningSerial:
		return nil, fmt.Errorf("%w: serial %d (%s) is not above the running serial %d", ErrNotNewer, m.Serial, m.Version, p.RunningSerial)
	case m.Serial < floor:
		return nil, fmt.Errorf("%w: serial %d (%s) is below min_serial %d", ErrBelowMinSerial, m.Serial, m.Version, floor)
	case m.Serial < p.HighestSeen:
		return nil, fmt.Errorf("%w: serial %d (%s) is below serial %d accepted before", ErrRollback, m.Serial, m.Version, p.HighestSeen)
	case slices.Contains(p.BadVersions, m.Version):
		return nil, fmt.Errorf("%w: %s failed its trial boot here before; waiting for a newer version", ErrBadVersion, m.Version)
	case p.SlotSize > 0 && m.Image.Size > p.SlotSize:
		return nil, fmt.Errorf("%w: image of %s is %d bytes, the slot %d", refusal.ErrDoesNotFit, m.Version, m.Image.Size, p.SlotSize)
	}
	return m, nil
}

// verifySignatures needs at least one signature by a trusted key, and
// every signature by a trusted key to verify; signatures by keys the device
// does not know are ignored (a release signed by an old and a new key
// during a rotation).
func verifySignatures(e *Envelope, trusted keys.Ring) error {
	good := 0
	for _, s := range e.Signatures {
		k, ok := trusted.Lookup(s.KeyID)
		if !ok {
			continue
		}
		if !k.Verify(e.Manifest, s.Sig) {
			return fmt.Errorf("%w: the signature by trusted key %s does not match the manifest bytes", ErrBadSignature, s.KeyID)
		}
		good++
	}
	if good > 0 {
		return nil
	}
	var by []string
	for _, s := range e.Signatures {
		by = append(by, s.KeyID)
	}
	signed := "no signature"
	if len(by) > 0 {
		signed = "signed by " + strings.Join(by, ", ")
	}
	trust := "none"
	if len(trusted) > 0 {
		trust = strings.Join(trusted.IDs(), ", ")
	}
	return fmt.Errorf("%w: %s; trusted keys: %s", ErrUntrustedKey, signed, trust)
}

// SignRelease is what `updater sign` and `updater publish` do to a build's
// manifest.json: it takes the bare manifest, or the manifest inside an
// envelope (whose signatures are dropped), sets the channel and an expiry of
// now+ttl (and created, when the build left it unset), signs the result,
// and checks it as a device trusting the signers would (with no running
// release). It returns the envelope and the manifest in it.
func SignRelease(b []byte, channel string, now time.Time, ttl time.Duration, signers ...*keys.PrivateKey) ([]byte, *Manifest, error) {
	return SignReleaseWith(b, SignOptions{Channel: channel, Now: now, TTL: ttl}, signers...)
}

// SignOptions are SignRelease's, and a staged rollout.
type SignOptions struct {
	Channel string
	Now     time.Time
	TTL     time.Duration
	// Rollout, when set, replaces the manifest's staged rollout.
	Rollout *Rollout
}

// SignReleaseWith is SignRelease with o, which may set the rollout.
func SignReleaseWith(b []byte, o SignOptions, signers ...*keys.PrivateKey) ([]byte, *Manifest, error) {
	channel, now, ttl := o.Channel, o.Now, o.TTL
	if err := ValidChannel(channel); err != nil {
		return nil, nil, err
	}
	if ttl <= 0 {
		return nil, nil, fmt.Errorf("sign: expiry %s from now is not in the future", ttl)
	}
	if len(signers) == 0 {
		return nil, nil, errors.New("sign manifest: no signing key")
	}
	if IsSigned(b) {
		e, err := ParseEnvelope(b)
		if err != nil {
			return nil, nil, err
		}
		b = e.Manifest
	}
	m, err := Decode(b)
	if err != nil {
		return nil, nil, err
	}
	now = now.UTC().Truncate(time.Second)
	m.Channel, m.Expires = channel, now.Add(ttl)
	if o.Rollout != nil {
		m.Rollout = o.Rollout
	}
	if m.Created.IsZero() {
		m.Created = now
	}
	body, err := m.Marshal()
	if err != nil {
		return nil, nil, err
	}
	signed, err := Sign(body, signers...)
	if err != nil {
		return nil, nil, err
	}
	var pubs []keys.PublicKey
	for _, k := range signers {
		pubs = append(pubs, k.Public())
	}
	ring, err := keys.NewRing(pubs...)
	if err != nil {
		return nil, nil, err
	}
	m, err = Verify(signed, Policy{Trusted: ring, Channel: channel, Now: now})
	if err != nil {
		return nil, nil, fmt.Errorf("signed manifest does not verify: %w", err)
	}
	return signed, m, nil
}
