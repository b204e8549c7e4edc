package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/twinroot/twinroot/internal/cli"
	"github.com/twinroot/twinroot/internal/keys"
)

// runKeyCmd runs keygen or sign under a root like updater's and returns
// the output and the error.
func runKeyCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := cli.Root(&cobra.Command{Use: "updater"})
	root.AddCommand(newKeygenCmd(), newSignCmd())
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestKeygen(t *testing.T) {
	base := filepath.Join(t.TempDir(), "release")
	out, err := runKeyCmd(t, "keygen", "--out", base, "-o", "json")
	if err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	var r keygenResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("keygen JSON: %v\n%s", err, out)
	}
	if r.Private != base+".key" || r.Public != base+".pub" {
		t.Errorf("keygen wrote %s and %s, want %s.key and %s.pub", r.Private, r.Public, base, base)
	}
	k, err := keys.LoadPrivate(r.Private)
	if err != nil {
		t.Fatal(err)
	}
	p, err := keys.LoadPublic(r.Public)
	if err != nil {
		t.Fatal(err)
	}
	if k.ID != r.KeyID || p.ID != r.KeyID {
		t.Errorf("key ids: printed %s, private %s, public %s", r.KeyID, k.ID, p.ID)
	}
	if fi, _ := os.Stat(r.Private); fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %04o, want 0600", r.Private, fi.Mode().Perm())
	}
	// A second keygen to the same name refuses and leaves the key alone.
	out, err = runKeyCmd(t, "keygen", "--out", base+".key")
	if !errors.Is(err, keys.ErrExists) {
		t.Errorf("second keygen: %v, want ErrExists\n%s", err, out)
	}
	if k2, _ := keys.LoadPrivate(r.Private); k2 == nil || k2.ID != k.ID {
		t.Error("second keygen changed the key")
	}
	// Text output names the id and both files.
	out, err = runKeyCmd(t, "keygen", "--out", filepath.Join(t.TempDir(), "other"))
	if err != nil || !strings.Contains(out, "key id") || !strings.Contains(out, "other.pub") {
		t.Errorf("keygen text: %v\n%s", err, out)
	}
}

func TestKeygenUsage(t *testing.T) {
	for _, args := range [][]string{
		{"keygen"},
		{"keygen", "--out", filepath.Join(t.TempDir(), "k"), "extra"},
		{"keygen", "--out", filepath.Join(t.TempDir(), "k"), "-o", "yaml"},
	} {
		if _, err := runKeyCmd(t, args...); cli.ExitCode(err) != cli.ExitUsage {
			t.Errorf("%v: %v (exit %d), want a usage error", args, err, cli.ExitCode(err))
		}
	}
	out, err := runKeyCmd(t, "keygen", "--help")
	if err != nil || !strings.Contains(out, "Exit codes") || !strings.Contains(out, "updater keygen --out") {
		t.Errorf("keygen --help lacks exit codes or an example: %v\n%s", err, out)
	}
}
