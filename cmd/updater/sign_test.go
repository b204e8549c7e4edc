package main

import (
	"bytes"
	"context"
	"crypto/rand"
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

	"github.com/twinroot/twinroot/internal/cli"
	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/manifest"
	"github.com/twinroot/twinroot/internal/refusal"
)

// buildDir writes what updater build leaves in its output directory: a
// slot image, its compressed object, the chunk index and the bare
// manifest (no channel, no expiry).
func buildDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string][]byte{"slot.img": make([]byte, 1<<20), manifest.ImageObject: make([]byte, 1000), manifest.IndexObject: make([]byte, 300)}
	for name, b := range files {
		rand.Read(b)
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hash := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	img, idx := manifest.Keys("1.2.0")
	m := manifest.Manifest{
		Schema: manifest.Schema, Version: "1.2.0", Serial: 7, MinSerial: 1,
		Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Image:   manifest.Image{Key: img, Size: 1 << 20, SHA256: hash(files["slot.img"]), CompressedSize: 1000},
		Index:   manifest.Index{Key: idx, SHA256: hash(files[manifest.IndexObject])},
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, manifest.File), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// newKey runs keygen and returns the private key path and the directory
// holding only its public key (as an image's trusted/ does).
func newKey(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "trusted"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := runKeyCmd(t, "keygen", "--out", filepath.Join(dir, "trusted", "release")); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	priv := filepath.Join(dir, "release.key")
	if err := os.Rename(filepath.Join(dir, "trusted", "release.key"), priv); err != nil {
		t.Fatal(err)
	}
	return priv, filepath.Join(dir, "trusted")
}

func verifyDir(t *testing.T, dir, trusted, channel string) (*manifest.Manifest, error) {
	t.Helper()
	ring, err := keys.LoadTrusted(trusted)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, manifest.File))
	if err != nil {
		t.Fatal(err)
	}
	return manifest.Verify(b, manifest.Policy{Trusted: ring, Channel: channel, SlotSize: 2 << 30})
}

func TestSignInPlace(t *testing.T) {
	dir := buildDir(t)
	key, trusted := newKey(t)
	start := time.Now().Truncate(time.Second)
	out, err := runKeyCmd(t, "sign", "--image", dir, "--channel", "stable", "--key", key, "-o", "json")
	if err != nil {
		t.Fatalf("sign: %v\n%s", err, out)
	}
	var r signResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("sign JSON: %v\n%s", err, out)
	}
	m, err := verifyDir(t, dir, trusted, "stable")
	if err != nil {
		t.Fatalf("signed manifest.json does not verify: %v", err)
	}
	if m.Channel != "stable" || m.Serial != 7 || m.Version != "1.2.0" || r.Serial != 7 || r.Channel != "stable" {
		t.Errorf("signed manifest %+v, printed %+v", m, r)
	}
	if d := m.Expires.Sub(start); d < 720*time.Hour || d > 721*time.Hour {
		t.Errorf("expires %s is %s from now, want 720h", m.Expires, d)
	}
	if want := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC); !m.Created.Equal(want) {
		t.Errorf("created %s, want the build's %s", m.Created, want)
	}

	// Re-signing for another channel replaces channel and expiry, and keeps
	// the rest.
	out, err = runKeyCmd(t, "sign", "--image", dir, "--channel", "beta", "--key", key, "--expires", "48h")
	if err != nil || !strings.Contains(out, "serial 7") {
		t.Fatalf("re-sign: %v\n%s", err, out)
	}
	m2, err := verifyDir(t, dir, trusted, "beta")
	if err != nil {
		t.Fatalf("re-signed manifest.json: %v", err)
	}
	if d := m2.Expires.Sub(start); d < 48*time.Hour || d > 49*time.Hour {
		t.Errorf("re-signed expires %s from now, want 48h", d)
	}
	if m2.Image != m.Image || m2.Index != m.Index || !m2.Created.Equal(m.Created) {
		t.Errorf("re-signing changed the release: %+v, was %+v", m2, m)
	}
	if _, err := verifyDir(t, dir, trusted, "stable"); !errors.Is(err, manifest.ErrWrongChannel) {
		t.Errorf("re-signed for beta, verified for stable: %v, want ErrWrongChannel", err)
	}
	e, err := manifest.ParseEnvelope(must(os.ReadFile(filepath.Join(dir, manifest.File))))
	if err != nil || len(e.Signatures) != 1 {
		t.Errorf("re-signed envelope: %v, %d signatures, want 1", err, len(e.Signatures))
	}

	// jq and base64 read the same manifest out of the envelope.
	if _, err := exec.LookPath("jq"); err == nil {
		c := exec.Command("sh", "-c", `jq -r .manifest manifest.json | base64 -d | jq -r '.channel + " " + .version'`)
		c.Dir = dir
		got, err := c.CombinedOutput()
		if err != nil || strings.TrimSpace(string(got)) != "beta 1.2.0" {
			t.Errorf("jq reads %q (%v), want \"beta 1.2.0\"", got, err)
		}
	}
}

func TestSignRotation(t *testing.T) {
	dir := buildDir(t)
	oldKey, oldTrusted := newKey(t)
	nextKey, nextTrusted := newKey(t)
	if out, err := runKeyCmd(t, "sign", "--image", dir, "--channel", "stable", "--key", oldKey, "--key", nextKey); err != nil {
		t.Fatalf("sign with two keys: %v\n%s", err, out)
	}
	for _, trusted := range []string{oldTrusted, nextTrusted} {
		if _, err := verifyDir(t, dir, trusted, "stable"); err != nil {
			t.Errorf("device trusting %s: %v", trusted, err)
		}
	}
}

// TestSignRefuses breaks each precondition of sign; manifest.json must be
// left byte for byte as it was.
func TestSignRefuses(t *testing.T) {
	key, _ := newKey(t)
	loose := filepath.Join(t.TempDir(), "loose.key")
	os.WriteFile(loose, must(os.ReadFile(key)), 0o644)
	os.Chmod(loose, 0o644)
	for _, tc := range []struct {
		name   string
		args   []string
		damage func(dir string)
		want   error
		usage  bool
	}{
		{name: "key readable by others", args: []string{"--key", loose}, want: keys.ErrInsecureKey},
		{name: "missing key", args: []string{"--key", key + ".missing"}, want: os.ErrNotExist},
		{name: "image changed", damage: func(dir string) { appendTo(filepath.Join(dir, "slot.img"), "x") }, want: refusal.ErrMismatch},
		{name: "index changed", damage: func(dir string) { appendTo(filepath.Join(dir, manifest.IndexObject), "x") }, want: refusal.ErrMismatch},
		{name: "compressed image changed", damage: func(dir string) { appendTo(filepath.Join(dir, manifest.ImageObject), "x") }, want: refusal.ErrMismatch},
		{name: "incomplete manifest", damage: func(dir string) {
			p := filepath.Join(dir, manifest.File)
			os.WriteFile(p, bytes.Replace(must(os.ReadFile(p)), []byte(`"serial": 7`), []byte(`"serial": 0`), 1), 0o644)
		}, want: manifest.ErrMalformed},
		{name: "not JSON", damage: func(dir string) { os.WriteFile(filepath.Join(dir, manifest.File), []byte("{"), 0o644) }, want: manifest.ErrMalformed},
		{name: "bad channel", args: []string{"--channel", "../stable"}, usage: true},
		{name: "no expiry", args: []string{"--expires", "0s"}, usage: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := buildDir(t)
			if tc.damage != nil {
				tc.damage(dir)
			}
			before := must(os.ReadFile(filepath.Join(dir, manifest.File)))
			args := []string{"sign", "--image", dir, "--channel", "stable", "--key", key}
			out, err := runKeyCmd(t, append(args, tc.args...)...)
			switch {
			case tc.usage && cli.ExitCode(err) != cli.ExitUsage:
				t.Errorf("sign: %v (exit %d), want a usage error", err, cli.ExitCode(err))
			case !tc.usage && !errors.Is(err, tc.want):
				t.Errorf("sign: %v, want %v\n%s", err, tc.want, out)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			if after := must(os.ReadFile(filepath.Join(dir, manifest.File))); !bytes.Equal(before, after) {
				t.Errorf("refused sign changed manifest.json:\n%s", after)
			}
			if tmp, _ := filepath.Glob(filepath.Join(dir, ".manifest.json.*")); len(tmp) > 0 {
				t.Errorf("left temporary files: %v", tmp)
			}
		})
	}
}

func TestSignInterrupted(t *testing.T) {
	dir := buildDir(t)
	key, _ := newKey(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	before := must(os.ReadFile(filepath.Join(dir, manifest.File)))
	err := runSign(ctx, signOptions{image: dir, channel: "stable", keys: []string{key}, expires: time.Hour, out: cli.Output{Format: "text"}}, &bytes.Buffer{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("sign with a cancelled context: %v, want context.Canceled", err)
	}
	if !bytes.Equal(before, must(os.ReadFile(filepath.Join(dir, manifest.File)))) {
		t.Error("interrupted sign changed manifest.json")
	}
}

func TestSignUsage(t *testing.T) {
	dir := buildDir(t)
	for _, args := range [][]string{
		{"sign", "--image", dir, "--channel", "stable"},
		{"sign", "--image", dir, "--key", "k.key"},
		{"sign", "--channel", "stable", "--key", "k.key"},
		{"sign", "--image", dir, "--channel", "stable", "--key", "k.key", "extra"},
		{"sign", "--image", dir, "--channel", "stable", "--key", "k.key", "--expires", "soon"},
	} {
		if _, err := runKeyCmd(t, args...); cli.ExitCode(err) != cli.ExitUsage {
			t.Errorf("%v: %v (exit %d), want a usage error", args, err, cli.ExitCode(err))
		}
	}
}

func TestSignHelp(t *testing.T) {
	out, err := runKeyCmd(t, "sign", "--help")
	if err != nil || !strings.Contains(out, "Exit codes") || !strings.Contains(out, "updater sign --image out/ --channel stable") {
		t.Errorf("sign --help lacks exit codes or an example: %v\n%s", err, out)
	}
}

func appendTo(path, s string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		panic(err)
	}
	f.WriteString(s)
	f.Close()
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
