package grub

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/twinroot/twinroot/internal/testfuzz"
)

func grubEditenv(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("grub-editenv", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("grub-editenv %v: %v\n%s", args, err, out)
	}
	return string(out)
}

var envCases = []Env{
	nil,
	{{"twinroot_committed", "a"}},
	{{"twinroot_committed", "b"}, {"twinroot_trial", ""}, {"twinroot_tries", "3"}},
	{{"backslash", `a\b\\c`}, {"newline", "one\ntwo\n"}, {"equals", "x=y=z"}, {"hash", "#not a comment"}, {"space", "  lead and trail  "}},
	{{"long", strings.Repeat("x", 900)}},
}

// TestEnvMatchesGrubEditenv writes each case with grub-editenv set and
// compares the file byte for byte with EncodeEnv, then decodes it.
func TestEnvMatchesGrubEditenv(t *testing.T) {
	for i, env := range envCases {
		path := filepath.Join(t.TempDir(), "grubenv")
		grubEditenv(t, path, "create")
		for _, v := range env {
			grubEditenv(t, path, "set", v.Name+"="+v.Value)
		}
		theirs, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		ours, err := EncodeEnv(env)
		if err != nil {
			t.Fatalf("case %d: EncodeEnv: %v", i, err)
		}
		if !bytes.Equal(ours, theirs) {
			t.Errorf("case %d: EncodeEnv differs from grub-editenv:\nours:   %q\ntheirs: %q", i, ours, theirs)
		}
		got, err := DecodeEnv(theirs)
		if err != nil {
			t.Fatalf("case %d: DecodeEnv: %v", i, err)
		}
		if diff := cmp.Diff(env, got); diff != "" {
			t.Errorf("case %d: DecodeEnv(grub-editenv file) (-want +got):\n%s", i, diff)
		}
	}
}

// TestGrubEditenvReadsOurs writes blocks with EncodeEnv and reads them with
// grub-editenv list, and has grub-editenv change one.
func TestGrubEditenvReadsOurs(t *testing.T) {
	for i, env := range envCases {
		if i == 3 {
			continue // grub-editenv list prints values unescaped: newlines are ambiguous
		}
		b, err := EncodeEnv(env)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "grubenv")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		var want strings.Builder
		for _, v := range env {
			want.WriteString(v.Name + "=" + v.Value + "\n")
		}
		if got := grubEditenv(t, path, "list"); got != want.String() {
			t.Errorf("case %d: grub-editenv list = %q, want %q", i, got, want.String())
		}
	}
	env := Env{{"twinroot_committed", "a"}, {"twinroot_tries", "3"}, {"twinroot_slot_b", "ok"}}
	b, _ := EncodeEnv(env)
	path := filepath.Join(t.TempDir(), "grubenv")
	os.WriteFile(path, b, 0o644)
	grubEditenv(t, path, "set", "twinroot_tries=0", "new=1")
	theirs, _ := os.ReadFile(path)
	ours, _ := EncodeEnv(env.Set("twinroot_tries", "0").Set("new", "1"))
	if !bytes.Equal(ours, theirs) {
		t.Errorf("after grub-editenv set:\nours:   %q\ntheirs: %q", ours, theirs)
	}
}

// TestLoadEnvMatchesGrubEditenv: grub-editenv list walks a block with the
// iterator GRUB's load_env uses, so it prints what loadEnv must return for
// blocks DecodeEnv refuses or reads otherwise.
func TestLoadEnvMatchesGrubEditenv(t *testing.T) {
	for _, b := range []string{
		"twinroot_committed=b\ntwinroot_tries=3\nbroken",      // a variable with no '='
		"twinroot_committed=b\nunterminated=x",                // a value running into the end
		"#comment\\\ntwinroot_committed=b\nx=1\n",             // a backslash in a comment escapes its newline
		"twinroot_slot_b=ok\x00junk\ntwinroot_trial\x00x=b\n", // C strings
		"twinroot_committed=b\ntwinroot_committed=a\n",        // listed in order; load_env sets the last
	} {
		block := []byte(envSignature + b)
		block = append(block, bytes.Repeat([]byte{'#'}, EnvSize-len(block))...)
		path := filepath.Join(t.TempDir(), "grubenv")
		if err := os.WriteFile(path, block, 0o644); err != nil {
			t.Fatal(err)
		}
		env, err := loadEnv(block)
		if err != nil {
			t.Fatalf("loadEnv(%q): %v", b, err)
		}
		var want strings.Builder
		for _, v := range env {
			want.WriteString(v.Name + "=" + v.Value + "\n")
		}
		if got := grubEditenv(t, path, "list"); got != want.String() {
			t.Errorf("block %q: grub-editenv list = %q, loadEnv = %q", b, got, want.String())
		}
	}
	if _, err := loadEnv(bytes.Repeat([]byte{'#'}, EnvSize)); !errors.Is(err, ErrEnvInvalid) {
		t.Errorf("loadEnv(no signature) = %v, want ErrEnvInvalid", err)
	}
	if v, _ := (Env{{"a", "1"}, {"a", "2"}}).Get("a"); v != "2" {
		t.Errorf("Get of a name set twice = %q, want the last, 2", v)
	}
}

func TestEnvErrors(t *testing.T) {
	if _, err := EncodeEnv(Env{{"big", strings.Repeat("x", EnvSize)}}); !errors.Is(err, ErrEnvTooLarge) {
		t.Errorf("EncodeEnv(too big) = %v, want ErrEnvTooLarge", err)
	}
	for _, name := range []string{"", "a=b", "a\nb", "#c"} {
		if _, err := EncodeEnv(Env{{name, "v"}}); err == nil {
			t.Errorf("EncodeEnv(name %q) succeeded", name)
		}
	}
	for _, b := range []string{
		"",
		"# GRUB Environment Block", // signature without its newline
		"# GRUB Environment Block\nnoequals",
		"# GRUB Environment Block\nname=unterminated",
		"# GRUB Environment Block\nname=trailing\\",
		strings.Repeat("#", EnvSize),
	} {
		if _, err := DecodeEnv([]byte(b)); !errors.Is(err, ErrEnvInvalid) {
			t.Errorf("DecodeEnv(%q) = %v, want ErrEnvInvalid", b, err)
		}
	}
}

func FuzzDecodeEnv(f *testing.F) {
	for i, env := range envCases {
		b, _ := EncodeEnv(env)
		testfuzz.Add(f, fmt.Sprintf("env-%d", i), b)
	}
	testfuzz.Add(f, "escapes", []byte("# GRUB Environment Block\na\\\n=b\\\\\n#x\nc=d\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := DecodeEnv(b)
		loaded, lerr := loadEnv(b)
		if (lerr == nil) != bytes.HasPrefix(b, []byte(envSignature)) {
			t.Fatalf("loadEnv: %v, for a block with signature %v", lerr, bytes.HasPrefix(b, []byte(envSignature)))
		}
		if err != nil {
			return
		}
		if !bytes.Contains(b, []byte{0}) {
			if diff := cmp.Diff(env, loaded); diff != "" {
				t.Fatalf("loadEnv of a valid block differs from DecodeEnv (-decode +load):\n%s", diff)
			}
		}
		enc, err := EncodeEnv(env)
		if err != nil {
			return // names GRUB accepts on reading but that cannot be written, or too large
		}
		again, err := DecodeEnv(enc)
		if err != nil {
			t.Fatalf("DecodeEnv(EncodeEnv(env)) failed: %v", err)
		}
		if diff := cmp.Diff(env, again); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}
