package testfuzz

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMarshal pins the format; go test reads every corpus file this package
// wrote in the other packages and fails on one it cannot parse.
func TestMarshal(t *testing.T) {
	got, err := Marshal([]byte("a\x00\"\n\xff"), "é", true, -3, int64(4), uint64(5))
	if err != nil {
		t.Fatal(err)
	}
	want := "go test fuzz v1\n[]byte(\"a\\x00\\\"\\n\\xff\")\nstring(\"é\")\nbool(true)\nint(-3)\nint64(4)\nuint64(5)\n"
	if string(got) != want {
		t.Errorf("Marshal = %q, want %q", got, want)
	}
	if _, err := Marshal(1.5); err == nil {
		t.Error("Marshal(float64) succeeded")
	}
}

func TestWriteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "input")
	for _, data := range []string{"a longer first input", "short", "", "again"} {
		WriteFile(t, path, []byte(data), 0o644)
		if got, err := os.ReadFile(path); err != nil || string(got) != data {
			t.Errorf("after WriteFile(%q): %q, %v", data, got, err)
		}
	}
}
