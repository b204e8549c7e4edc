package manifest

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/semver"

	"github.com/twinroot/twinroot/internal/testfuzz"
)

// FuzzVerify feeds arbitrary documents to Verify: it must never panic, and
// whatever it accepts must satisfy every rule.
func FuzzVerify(f *testing.F) {
	k := key(f, 1)
	good := sign(f, release(), k)
	testfuzz.Add(f, "signed", good)
	testfuzz.Add(f, "signed-twice", sign(f, release(), k, key(f, 2)))
	testfuzz.Add(f, "signed-incomplete", signRaw(f, []byte(`{"schema":1}`), k))
	testfuzz.Add(f, "empty-sig", []byte(`{"manifest":"e30=","signatures":[{"key_id":"0123456789abcdef","sig":""}]}`))
	testfuzz.Add(f, "upper-case-key", bytes.Replace(good, []byte(`"manifest"`), []byte(`"Manifest"`), 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := policy(t)
		m, err := Verify(b, p)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Errorf("accepted an invalid manifest: %v", err)
		}
		if m.Channel != p.Channel || !p.Now.Before(m.Expires) || m.Serial <= p.RunningSerial || m.Serial < m.MinSerial || m.Image.Size > p.SlotSize {
			t.Errorf("accepted a manifest breaking a rule: %+v", m)
		}
	})
}

// FuzzParse feeds arbitrary bare manifests to Parse; what it accepts must
// survive a round trip through Marshal, and Verify must read the same
// bytes, signed by a trusted key, as well formed.
func FuzzParse(f *testing.F) {
	k := key(f, 1)
	testfuzz.Add(f, "release", marshal(f, release()))
	testfuzz.Add(f, "incomplete", []byte(`{"schema":1,"serial":1}`))
	testfuzz.Add(f, "duplicate-key", []byte(`{"schema":1,"schema":1}`))
	testfuzz.Add(f, "schema-2", []byte(`{"schema":2}`))
	testfuzz.Add(f, "nested", []byte(`[{"a":[{"b":{}}]}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("Parse: %v is not ErrMalformed", err)
			}
			return
		}
		m2, err := Parse(marshal(t, m))
		if err != nil {
			t.Fatalf("re-marshalled manifest does not parse: %v", err)
		}
		if diff := cmp.Diff(m, m2); diff != "" {
			t.Errorf("round trip (-first +second):\n%s", diff)
		}
		if _, err := Verify(signRaw(t, b, k), Policy{Trusted: policy(t).Trusted, Channel: m.Channel, Now: m.Created}); errors.Is(err, ErrMalformed) {
			t.Errorf("Parse accepts, Verify says %v", err)
		}
	})
}

// FuzzParseVersion checks the hand-written semver parser against
// golang.org/x/mod/semver (which wants a "v" and also takes "v1.2", and
// numbers of any size where ParseVersion refuses, by name, those above
// 64 bits: the campaign's fuzzing found one, kept in testdata).
func FuzzParseVersion(f *testing.F) {
	for i, s := range []string{"1.4.0", "1.0.0-rc.1+build.5", "01.0.0", "1.0", "1.0.0-01", "1.0.0-a..b"} {
		testfuzz.Add(f, fmt.Sprintf("version-%d", i), s, "1.0.0")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		va, err := ParseVersion(a)
		if errors.Is(err, errVersionRange) {
			return
		}
		full := semver.IsValid("v"+a) && semver.Canonical("v"+a) == "v"+strings.SplitN(a, "+", 2)[0]
		if ok := err == nil; ok != full && !strings.HasPrefix(a, "v") {
			t.Fatalf("ParseVersion(%q) ok=%v, x/mod/semver says %v", a, ok, full)
		}
		if err != nil {
			return
		}
		if va.String() != a {
			t.Errorf("ParseVersion(%q).String() = %q", a, va.String())
		}
		vb, err := ParseVersion(b)
		if err != nil {
			return
		}
		if got, want := va.Compare(vb), semver.Compare("v"+a, "v"+b); got != want {
			t.Errorf("Compare(%q, %q) = %d, x/mod/semver says %d", a, b, got, want)
		}
	})
}

// FuzzParseEnvelope: a device reads the envelope of any latest.json the
// store serves, and when Verify refuses it, ParseEnvelope and Decode read
// the version out of the unverified bytes to name the refusal. Both must
// refuse with ErrMalformed or give what re-encodes to the same value, and an
// envelope they accept holds only well-formed signatures.
func FuzzParseEnvelope(f *testing.F) {
	k1, k2 := key(f, 1), key(f, 2)
	good := sign(f, release(), k1)
	testfuzz.Add(f, "signed", good)
	testfuzz.Add(f, "signed-twice", sign(f, release(), k1, k2))
	bare := release()
	bare.Channel, bare.Expires, bare.Rollout, bare.Containers = "", time.Time{}, nil, nil
	testfuzz.Add(f, "build-output", signRaw(f, marshal(f, bare), k1))
	testfuzz.Add(f, "bare-manifest", marshal(f, release()))
	testfuzz.Add(f, "no-signatures", []byte(`{"manifest":"e30=","signatures":[]}`))
	testfuzz.Add(f, "short-sig", []byte(`{"manifest":"e30=","signatures":[{"key_id":"0123456789abcdef","sig":"AAAA"}]}`))
	testfuzz.Add(f, "upper-case-key", bytes.Replace(good, []byte(`"manifest"`), []byte(`"Manifest"`), 1))
	testfuzz.Add(f, "manifest-twice", bytes.Replace(good, []byte(`"signatures"`), []byte(`"manifest":"e30=","signatures"`), 1))
	testfuzz.Add(f, "trailing-data", append(bytes.Clone(good), "{}"...))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEnvelope(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseEnvelope: %v is not ErrMalformed", err)
			}
			return
		}
		if len(e.Manifest) == 0 {
			t.Fatal("accepted an envelope without a manifest")
		}
		for _, s := range e.Signatures {
			if !keyIDRE.MatchString(s.KeyID) || len(s.Sig) != ed25519.SignatureSize {
				t.Fatalf("accepted signature %+v", s)
			}
		}
		e2, err := ParseEnvelope(mustJSON(t, e))
		if err != nil {
			t.Fatalf("re-encoded envelope does not parse: %v", err)
		}
		if diff := cmp.Diff(e, e2); diff != "" {
			t.Fatalf("envelope round trip (-first +second):\n%s", diff)
		}
		m, err := Decode(e.Manifest)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode: %v is not ErrMalformed", err)
			}
			return
		}
		if m.Schema != Schema {
			t.Fatalf("Decode accepted schema %d", m.Schema)
		}
		again, err := m.Marshal()
		if err != nil {
			t.Fatalf("a decoded manifest does not marshal: %v", err)
		}
		m2, err := Decode(again)
		if err != nil {
			t.Fatalf("re-marshalled manifest does not decode: %v", err)
		}
		if diff := cmp.Diff(m, m2); diff != "" {
			t.Fatalf("manifest round trip (-first +second):\n%s", diff)
		}
	})
}
