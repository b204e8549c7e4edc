package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type report struct {
	Answer int `json:"answer"`
}

func table(w io.Writer, r report) error {
	_, err := fmt.Fprintf(w, "answer %d\n", r.Answer)
	return err
}

// newCLI returns a command line with one flag of the program's own, and
// its stdout and stderr.
func newCLI() (*CLI, *Common, *int, *bytes.Buffer, *bytes.Buffer) {
	var c Common
	cli := New("test-bench", "./bench/test", "Measures nothing.", &c)
	runs := cli.Flags.Int("runs", 3, "runs")
	var stdout, stderr bytes.Buffer
	cli.Stdout, cli.Stderr = &stdout, &stderr
	return cli, &c, runs, &stdout, &stderr
}

func TestParse(t *testing.T) {
	checkRuns := func(runs *int) func() error {
		return func() error {
			if *runs < 1 {
				return fmt.Errorf("-runs %d: want at least 1", *runs)
			}
			return nil
		}
	}
	for _, tt := range []struct {
		args   []string
		exit   int
		ok     bool
		stderr string
	}{
		{nil, ExitOK, true, ""},
		{[]string{"-o", "json", "-work", "/tmp/w", "-updater", "/bin/updater", "-runs", "5"}, ExitOK, true, ""},
		{[]string{"-h"}, ExitOK, false, "usage: go run ./bench/test [flags]\n\nMeasures nothing.\n\nflags:\n"},
		{[]string{"-bogus"}, ExitUsage, false, "flag provided but not defined: -bogus"},
		{[]string{"extra"}, ExitUsage, false, `bench: unexpected arguments ["extra"]`},
		{[]string{"-o", "xml"}, ExitUsage, false, `bench: -o "xml": want text or json`},
		{[]string{"-runs", "0"}, ExitUsage, false, "bench: -runs 0: want at least 1"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			cli, _, runs, _, stderr := newCLI()
			exit, ok := cli.Parse(tt.args, checkRuns(runs))
			if exit != tt.exit || ok != tt.ok {
				t.Errorf("Parse(%q) = %d, %v; want %d, %v", tt.args, exit, ok, tt.exit, tt.ok)
			}
			if !strings.Contains(stderr.String(), tt.stderr) || tt.stderr == "" && stderr.Len() > 0 {
				t.Errorf("Parse(%q) printed %q, want %q", tt.args, stderr, tt.stderr)
			}
		})
	}
	cli, c, runs, _, _ := newCLI()
	if _, ok := cli.Parse([]string{"-o", "json", "-work", "/tmp/w", "-updater", "/bin/updater", "-runs", "5"}, nil); !ok {
		t.Fatal("Parse failed")
	}
	if got, want := *c, (Common{Updater: "/bin/updater", Work: "/tmp/w", Output: "json"}); got != want || *runs != 5 {
		t.Errorf("Parse filled %+v and runs %d, want %+v and 5", got, *runs, want)
	}
}

func TestMainPrintsReport(t *testing.T) {
	ok := func(context.Context, io.Writer) (report, error) { return report{Answer: 42}, nil }
	for _, tt := range []struct {
		name   string
		args   []string
		run    func(context.Context, io.Writer) (report, error)
		exit   int
		stdout string
		stderr string
	}{
		{"text", nil, ok, ExitOK, "answer 42\n", "bench: done in"},
		{"json", []string{"-o", "json"}, ok, ExitOK, "{\n  \"answer\": 42\n}\n", "bench: done in"},
		{"failed", nil, func(context.Context, io.Writer) (report, error) { return report{}, errors.New("disk full") }, ExitFail, "", "bench failed: disk full\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cli, _, _, stdout, stderr := newCLI()
			if _, ok := cli.Parse(tt.args, nil); !ok {
				t.Fatal("Parse failed")
			}
			if got := Main(cli, tt.run, table); got != tt.exit {
				t.Errorf("Main = %d, want %d", got, tt.exit)
			}
			if got := stdout.String(); got != tt.stdout {
				t.Errorf("stdout = %q, want %q", got, tt.stdout)
			}
			if got := stderr.String(); !strings.HasPrefix(got, tt.stderr) {
				t.Errorf("stderr = %q, want it to begin %q", got, tt.stderr)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := Median(tc.in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestNeedTools(t *testing.T) {
	if err := NeedTools("sh"); err != nil {
		t.Errorf("NeedTools(sh) = %v", err)
	}
	if err, want := NeedTools("sh", "no-such-tool-twinroot"), "no-such-tool-twinroot not found: run make deps"; err == nil || err.Error() != want {
		t.Errorf("NeedTools = %v, want %q", err, want)
	}
}

func TestCommand(t *testing.T) {
	out, err := Command(context.Background(), []string{"TWINROOT_BENCH=yes"}, "sh", "-c", `echo "$TWINROOT_BENCH"`)
	if err != nil || string(out) != "yes\n" {
		t.Errorf("Command = %q, %v; want %q, nil", out, err, "yes\n")
	}
	_, err = Command(context.Background(), nil, "sh", "-c", "echo no space left >&2; exit 3")
	if err == nil || err.Error() != "sh -c: exit status 3: no space left" {
		t.Errorf("Command of a failing command = %v, want its name, status and stderr", err)
	}
}

// TestPrepare gives an updater that makes its key files: Prepare uses it
// and a work directory given, and removes a temporary one.
func TestPrepare(t *testing.T) {
	updater := filepath.Join(t.TempDir(), "updater")
	script := "#!/bin/sh\n[ \"$1\" = keygen ] && [ \"$2\" = --out ] && touch \"$3.key\" \"$3.pub\"\n"
	if err := os.WriteFile(updater, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	logf := func(format string, args ...any) { t.Logf(format, args...) }
	work := filepath.Join(t.TempDir(), "work")
	env, remove, err := Prepare(context.Background(), Common{Updater: updater, Work: work}, "unused-", logf)
	if err != nil {
		t.Fatal(err)
	}
	remove()
	if env.Work != work || env.Updater != updater {
		t.Errorf("Prepare = %+v, want work %s and updater %s", env, work, updater)
	}
	for _, f := range []string{env.Key, env.Pub} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("key file: %v (a given work directory is kept)", err)
		}
	}

	env, remove, err = Prepare(context.Background(), Common{Updater: updater}, "twinroot-harness-test-", logf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(env.Key); err != nil {
		t.Error(err)
	}
	remove()
	if _, err := os.Stat(env.Work); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary work directory after remove: %v, want it gone", err)
	}
}
