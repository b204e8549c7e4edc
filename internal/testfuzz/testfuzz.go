// Package testfuzz keeps the seed corpora of the fuzz targets in testdata.
// A seed added with Add runs as an ordinary test case on every go test, like
// f.Add; with -update-corpus it is written to testdata/fuzz/<FuzzName>/<name>
// in the format of go test's fuzzing engine, where the engine's own finds (a
// crasher it writes there) join it:
//
//	go test ./internal/bootstate -run '^Fuzz' -update-corpus
//
// The committed files are the corpus a campaign starts from, and every
// crasher kept there is a regression test.
package testfuzz

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update-corpus", false, "write the seeds of Add to testdata/fuzz/<FuzzName>/")

// Add adds a seed to f, as f.Add does unless testdata/fuzz/<f.Name()>/<name>
// holds the same input already (go test runs that file). With
// -update-corpus it writes the file.
func Add(f *testing.F, name string, args ...any) {
	f.Helper()
	b, err := Marshal(args...)
	if err != nil {
		f.Fatalf("seed %s: %v", name, err)
	}
	dir := filepath.Join("testdata", "fuzz", f.Name())
	path := filepath.Join(dir, name)
	if !*update {
		if old, err := os.ReadFile(path); err != nil || !bytes.Equal(old, b) {
			f.Add(args...)
		}
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		f.Fatal(err)
	}
}

// Marshal encodes a fuzz input as a corpus file ("go test fuzz v1", then
// one Go literal per argument).
func Marshal(args ...any) ([]byte, error) {
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%s)\n", strconv.Quote(string(v)))
		case string:
			fmt.Fprintf(&b, "string(%s)\n", strconv.Quote(v))
		case bool:
			fmt.Fprintf(&b, "bool(%v)\n", v)
		case int:
			fmt.Fprintf(&b, "int(%d)\n", v)
		case int64:
			fmt.Fprintf(&b, "int64(%d)\n", v)
		case uint64:
			fmt.Fprintf(&b, "uint64(%d)\n", v)
		default:
			return nil, fmt.Errorf("type %T is not a fuzz argument this package writes", a)
		}
	}
	return []byte(b.String()), nil
}

// WriteFile writes data to path for a fuzz target that hands its input to
// a reader of files, thousands of times a second. It writes over the old
// bytes and then cuts the file to length, where os.WriteFile truncates the
// file to nothing first: ext4 writes a file truncated to nothing out to the
// disk when it is closed (auto_da_alloc, for programs that replace a file
// without fsync), a millisecond of disk on every execution.
func WriteFile(t testing.TB, path string, data []byte, perm os.FileMode) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, perm)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
