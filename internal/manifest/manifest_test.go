package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/refusal"
	"github.com/twinroot/twinroot/internal/testenv"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func key(t testing.TB, b byte) *keys.PrivateKey {
	t.Helper()
	k, err := keys.FromSeed(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// release returns a complete manifest of serial 10 on channel stable.
func release() *Manifest {
	img, idx := Keys("1.4.0")
	return &Manifest{
		Schema: Schema, Channel: "stable", Version: "1.4.0", Serial: 10,
		Created: now.Add(-time.Hour), Expires: now.Add(30 * 24 * time.Hour),
		Image:     Image{Key: img, Size: 400 << 20, SHA256: sum("image"), CompressedSize: 120 << 20},
		Index:     Index{Key: idx, SHA256: sum("index")},
		MinSerial: 8,
		Rollout:   &Rollout{Start: now, Duration: Duration(72 * time.Hour)},
		Containers: []Container{
			{Name: "web", Digest: "sha256:" + sum("web")},
		},
	}
}

func marshal(t testing.TB, m *Manifest) []byte {
	t.Helper()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sign(t testing.TB, m *Manifest, ks ...*keys.PrivateKey) []byte {
	t.Helper()
	b, err := Sign(marshal(t, m), ks...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// policy is a device on stable running serial 9 that trusts key 1.
func policy(t testing.TB) Policy {
	return Policy{
		Trusted: keys.Ring{key(t, 1).Public()}, Channel: "stable", Now: now,
		RunningSerial: 9, HighestSeen: 9, MinSerial: 5, BadVersions: []string{"1.3.9"}, SlotSize: 2 << 30,
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	want := release()
	signed := sign(t, want, key(t, 1))
	got, err := Verify(signed, policy(t))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Verify(Sign(m)) (-want +got):\n%s", diff)
	}
	// The envelope carries the exact bytes that were signed.
	e, err := ParseEnvelope(signed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e.Manifest, marshal(t, want)) {
		t.Error("envelope manifest differs from the signed bytes")
	}
	if !IsSigned(signed) || IsSigned(marshal(t, want)) {
		t.Error("IsSigned cannot tell the envelope from the bare manifest")
	}
}

func TestKeyRotation(t *testing.T) {
	old, new := key(t, 1), key(t, 2)
	signed := sign(t, release(), old, new)
	for _, trusted := range []keys.Ring{{old.Public()}, {new.Public()}, {old.Public(), new.Public()}} {
		p := policy(t)
		p.Trusted = trusted
		if _, err := Verify(signed, p); err != nil {
			t.Errorf("trusting %v: %v", trusted.IDs(), err)
		}
	}
}

// TestRules breaks each acceptance rule on purpose.
func TestRules(t *testing.T) {
	k1, k2 := key(t, 1), key(t, 2)
	with := func(f func(*Manifest)) []byte {
		m := release()
		f(m)
		return sign(t, m, k1)
	}
	good := sign(t, release(), k1)
	for _, tc := range []struct {
		name   string
		signed []byte
		policy func(*Policy)
		want   error
		says   string // the one-line error names the rule
	}{
		{"wrong key", sign(t, release(), k2), nil, ErrUntrustedKey, "not signed by a trusted key"},
		{"no signatures", mustJSON(t, Envelope{Manifest: marshal(t, release()), Signatures: []Signature{}}), nil, ErrUntrustedKey, "no signature"},
		{"no trusted keys", good, func(p *Policy) { p.Trusted = nil }, ErrUntrustedKey, "trusted keys: none"},
		{"trusted id, other key's signature", forge(t, release(), k2, k1.ID), nil, ErrBadSignature, "does not match"},
		{"wrong channel", with(func(m *Manifest) { m.Channel = "beta" }), nil, ErrWrongChannel, `channel "beta"`},
		{"expired", good, func(p *Policy) { p.Now = now.Add(31 * 24 * time.Hour) }, ErrExpired, "expired at"},
		{"expires this instant", good, func(p *Policy) { p.Now = release().Expires }, ErrExpired, "expired"},
		{"older serial", good, func(p *Policy) { p.RunningSerial = 11 }, ErrOlder, "below the running serial 11"},
		{"same serial", good, func(p *Policy) { p.RunningSerial = 10 }, ErrNotNewer, "not above the running serial 10"},
		{"same serial", good, func(p *Policy) { p.RunningSerial = 10 }, ErrNotNewer, "not above"},
		{"below own min_serial", with(func(m *Manifest) { m.MinSerial = 11 }), nil, ErrBelowMinSerial, "below min_serial 11"},
		{"below recorded floor", good, func(p *Policy) { p.MinSerial = 12; p.RunningSerial = 3 }, ErrBelowMinSerial, "min_serial 12"},
		{"rollback", good, func(p *Policy) { p.HighestSeen = 11 }, ErrRollback, "below serial 11 accepted before"},
		{"version recorded bad", good, func(p *Policy) { p.BadVersions = []string{"1.3.9", "1.4.0"} }, ErrBadVersion, "1.4.0 failed its trial boot"},
		{"image larger than the slot", good, func(p *Policy) { p.SlotSize = 400<<20 - 1 }, refusal.ErrDoesNotFit, "does not fit"},
		{"malformed JSON", []byte(`{"manifest": "e30=", "signatures": [`), nil, ErrMalformed, "malformed"},
		{"bare manifest", marshal(t, release()), nil, ErrBadSignature, "not signed"},
		{"not an envelope", []byte(`{"manifest": 1}`), nil, ErrMalformed, "cannot unmarshal"},
		{"huge document", huge(t, good), nil, ErrMalformed, "limit 65536"},
		{"over the policy limit", good, func(p *Policy) { p.MaxSize = 100 }, ErrMalformed, "limit 100"},
		{"unknown schema", signRaw(t, bytes.Replace(marshal(t, release()), []byte(`"schema": 1`), []byte(`"schema": 2`), 1), k1), nil, ErrMalformed, "unknown schema 2"},
		{"unknown field", signRaw(t, bytes.Replace(marshal(t, release()), []byte(`"schema": 1,`), []byte(`"schema": 1, "reboot": "now",`), 1), k1), nil, ErrMalformed, `unknown field "reboot"`},
		{"duplicate key", signRaw(t, bytes.Replace(marshal(t, release()), []byte(`"schema": 1,`), []byte(`"schema": 1, "serial": 99,`), 1), k1), nil, ErrMalformed, `duplicate key "serial"`},
		{"upper-case key", signRaw(t, bytes.Replace(marshal(t, release()), []byte(`"serial"`), []byte(`"Serial"`), 1), k1), nil, ErrMalformed, "not lower case"},
		{"trailing data", signRaw(t, append(marshal(t, release()), "{}"...), k1), nil, ErrMalformed, "after top-level value"},
		{"not semver", signRaw(t, bytes.Replace(marshal(t, release()), []byte(`"version": "1.4.0"`), []byte(`"version": "v1.4"`), 1), k1), nil, ErrMalformed, "MAJOR.MINOR.PATCH"},
		{"key escapes the channel", signRaw(t, bytes.Replace(marshal(t, release()), []byte(`"1.4.0/chunks.idx"`), []byte(`"../beta/chunks.idx"`), 1), k1), nil, ErrMalformed, "index.key"},
		{"bad signature length", bytes.Replace(good, []byte(`"sig": "`), []byte(`"sig": "AAAA`), 1), nil, ErrMalformed, "64-byte sig"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := policy(t)
			if tc.policy != nil {
				tc.policy(&p)
			}
			_, err := Verify(tc.signed, p)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
			for _, other := range allErrors {
				if other != tc.want && errors.Is(err, other) {
					t.Errorf("Verify: %v is also %v", err, other)
				}
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, tc.says) {
				t.Errorf("Verify: %q, want one line saying %q", msg, tc.says)
			}
		})
	}
}

var allErrors = []error{ErrMalformed, ErrBadSignature, ErrUntrustedKey, ErrWrongChannel, ErrExpired,
	ErrNotNewer, ErrOlder, ErrBelowMinSerial, ErrRollback, ErrBadVersion, refusal.ErrDoesNotFit, refusal.ErrMismatch}

// TestFlippedByte flips every bit position's byte of the signed manifest
// bytes in turn: none verifies.
func TestFlippedByte(t *testing.T) {
	k := key(t, 1)
	e, err := ParseEnvelope(sign(t, release(), k))
	if err != nil {
		t.Fatal(err)
	}
	orig := e.Manifest
	for i := range orig {
		e.Manifest = bytes.Clone(orig)
		e.Manifest[i] ^= 0x01
		_, err := Verify(mustJSON(t, e), policy(t))
		if !errors.Is(err, ErrBadSignature) {
			t.Fatalf("byte %d flipped: %v, want ErrBadSignature", i, err)
		}
	}
	// A flipped signature byte fails too.
	e.Manifest = orig
	e.Signatures[0].Sig[10] ^= 0x80
	if _, err := Verify(mustJSON(t, e), policy(t)); !errors.Is(err, ErrBadSignature) {
		t.Errorf("flipped signature: %v, want ErrBadSignature", err)
	}
}

func TestSignRefusesIncomplete(t *testing.T) {
	m := release()
	m.Channel, m.Expires = "", time.Time{}
	b := marshal(t, m)
	if _, err := Decode(b); err != nil {
		t.Errorf("Decode of an unsigned build manifest: %v", err)
	}
	if _, err := Sign(b, key(t, 1)); !errors.Is(err, ErrMalformed) {
		t.Errorf("Sign without channel and expiry: %v, want ErrMalformed", err)
	}
	if bytes.Contains(b, []byte("expires")) || bytes.Contains(b, []byte("channel")) {
		t.Errorf("unset channel/expires are written:\n%s", b)
	}
}

func TestCheckArtifacts(t *testing.T) {
	m := release()
	m.Image.Size = int64(len("image"))
	if err := m.CheckImage(strings.NewReader("image")); err != nil {
		t.Errorf("CheckImage: %v", err)
	}
	if err := m.CheckImage(strings.NewReader("imagE")); !errors.Is(err, refusal.ErrMismatch) {
		t.Errorf("CheckImage of other bytes: %v, want refusal.ErrMismatch", err)
	}
	if err := m.CheckImage(strings.NewReader("image!")); !errors.Is(err, refusal.ErrMismatch) {
		t.Errorf("CheckImage of a longer image: %v, want refusal.ErrMismatch", err)
	}
	if err := m.CheckIndex(strings.NewReader("index")); err != nil {
		t.Errorf("CheckIndex: %v", err)
	}
	if err := m.CheckIndex(strings.NewReader("other")); !errors.Is(err, refusal.ErrMismatch) {
		t.Errorf("CheckIndex of another index: %v, want refusal.ErrMismatch", err)
	}
}

// TestOpenSSLVerifies checks the envelope with tools that share no code
// with this package: jq and base64 take it apart, openssl checks the
// Ed25519 signature over the exact manifest bytes.
func TestOpenSSLVerifies(t *testing.T) {
	testenv.Need(t, "openssl", "jq", "base64")
	dir := t.TempDir()
	k := key(t, 1)
	signed := sign(t, release(), k)
	env := filepath.Join(dir, "manifest.json")
	os.WriteFile(env, signed, 0o644)
	// An Ed25519 SubjectPublicKeyInfo is a fixed 12-byte DER prefix and the
	// raw key (RFC 8410).
	spki := append([]byte{0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00}, k.Public().Key...)
	os.WriteFile(filepath.Join(dir, "pub.der"), spki, 0o644)
	sh := func(script string) (string, error) {
		c := exec.Command("sh", "-ec", script)
		c.Dir = dir
		out, err := c.CombinedOutput()
		return string(out), err
	}
	if out, err := sh(`jq -r .manifest manifest.json | base64 -d > m.bin
jq -r '.signatures[0].sig' manifest.json | base64 -d > sig.bin
test "$(jq -r '.signatures[0].key_id' manifest.json)" = "` + k.ID + `"
jq -e '.schema == 1 and .serial == 10 and .channel == "stable"' m.bin
openssl pkeyutl -verify -pubin -keyform DER -inkey pub.der -rawin -in m.bin -sigfile sig.bin`); err != nil {
		t.Fatalf("openssl rejects the signature: %v\n%s", err, out)
	}
	if out, err := sh(`sed -i 's/"serial": 10/"serial": 11/' m.bin
! openssl pkeyutl -verify -pubin -keyform DER -inkey pub.der -rawin -in m.bin -sigfile sig.bin`); err != nil {
		t.Fatalf("openssl accepts a changed manifest: %v\n%s", err, out)
	}
}

func TestVersion(t *testing.T) {
	for _, s := range []string{"0.0.0", "1.4.0", "10.20.30", "1.0.0-alpha.1", "1.0.0-0.3.7", "1.0.0-x-y-z.--", "1.0.0+20130313144700", "1.0.0-beta+exp.sha.5114f85", "1.0.0+0.build.1-rc.10000aaa-kk-0.1", "18446744073709551615.0.0"} {
		v, err := ParseVersion(s)
		if err != nil {
			t.Errorf("ParseVersion(%q): %v", s, err)
		} else if v.String() != s {
			t.Errorf("ParseVersion(%q).String() = %q", s, v.String())
		}
	}
	for _, s := range []string{"", "v1.0.0", "1.0", "1", "01.0.0", "1.02.0", "1.0.0-", "1.0.0-01", "1.0.0+", "1.0.0-a..b", "1.0.0-a_b", " 1.0.0", "1.0.0.0", "99999999999999999999.0.0"} {
		if _, err := ParseVersion(s); err == nil {
			t.Errorf("ParseVersion(%q) accepted", s)
		}
	}
	// Semver sets numbers no bound; ParseVersion says where its is.
	if _, err := ParseVersion("18446744073709551616.0.0"); !errors.Is(err, errVersionRange) ||
		err.Error() != `version "18446744073709551616.0.0": a number above 18446744073709551615, the largest a version may hold` {
		t.Errorf("ParseVersion of a number above 64 bits: %v", err)
	}
	// The precedence example of semver.org §11.
	order := []string{"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0"}
	for i := range order {
		for j := range order {
			a, _ := ParseVersion(order[i])
			b, _ := ParseVersion(order[j])
			if got, want := a.Compare(b), cmpInt(i, j); got != want {
				t.Errorf("Compare(%s, %s) = %d, want %d", order[i], order[j], got, want)
			}
		}
	}
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signRaw signs bytes Sign would refuse, as a careless or hostile holder
// of a trusted key could.
func signRaw(t testing.TB, m []byte, k *keys.PrivateKey) []byte {
	return mustJSON(t, Envelope{Manifest: m, Signatures: []Signature{{KeyID: k.ID, Sig: k.Sign(m)}}})
}

// forge signs with k but claims the key id of another key.
func forge(t testing.TB, m *Manifest, k *keys.PrivateKey, id string) []byte {
	b := marshal(t, m)
	return mustJSON(t, Envelope{Manifest: b, Signatures: []Signature{{KeyID: id, Sig: k.Sign(b)}}})
}

// huge pads a signed document past DefaultMaxSize with whitespace, so only
// its size is wrong.
func huge(t testing.TB, signed []byte) []byte {
	return append(bytes.Repeat([]byte(" "), 1<<20), signed...)
}

func TestSignRelease(t *testing.T) {
	k1, k2 := key(t, 1), key(t, 2)
	bare := release()
	bare.Channel, bare.Expires, bare.Created = "", time.Time{}, time.Time{}
	signed, m, err := SignRelease(marshal(t, bare), "stable", now, time.Hour, k1, k2)
	if err != nil {
		t.Fatal(err)
	}
	if m.Channel != "stable" || !m.Expires.Equal(now.Add(time.Hour)) || !m.Created.Equal(now) {
		t.Errorf("SignRelease set channel %q, created %s, expires %s", m.Channel, m.Created, m.Expires)
	}
	// Re-signing an envelope keeps created, replaces channel, expiry and
	// signatures.
	later := now.Add(24 * time.Hour)
	resigned, m2, err := SignRelease(signed, "beta", later, 2*time.Hour, k2)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Channel != "beta" || !m2.Created.Equal(now) || !m2.Expires.Equal(later.Add(2*time.Hour)) || m2.Serial != m.Serial {
		t.Errorf("re-signed manifest %+v", m2)
	}
	if e, _ := ParseEnvelope(resigned); len(e.Signatures) != 1 || e.Signatures[0].KeyID != k2.ID {
		t.Errorf("re-signed envelope keeps old signatures: %+v", e.Signatures)
	}
	for name, f := range map[string]func() error{
		"bad channel": func() error { _, _, err := SignRelease(signed, "Stable", now, time.Hour, k1); return err },
		"past expiry": func() error { _, _, err := SignRelease(signed, "stable", now, 0, k1); return err },
		"no key":      func() error { _, _, err := SignRelease(signed, "stable", now, time.Hour); return err },
		"not manifest": func() error {
			_, _, err := SignRelease([]byte(`{"schema": 1}`), "stable", now, time.Hour, k1)
			return err
		},
	} {
		if err := f(); err == nil {
			t.Errorf("%s: SignRelease accepted", name)
		}
	}
}
