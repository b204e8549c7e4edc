package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// campaignExecs is what the campaign runs each fuzz target for.
const campaignExecs = 10_000_000

// shortExecs is -short's count: enough to see each target fuzz.
const shortExecs = 10_000

// target is one fuzz target: its package's import path and directory
// relative to the module root, and its name.
type target struct {
	Pkg, Dir, Name string
}

// fuzzPart runs every fuzz target of the module for o.FuzzExecs executions.
func fuzzPart(ctx context.Context, o options, log io.Writer) (Section, error) {
	s := Section{
		Part:  "fuzz",
		Title: "Fuzzing",
		About: fmt.Sprintf("Each fuzz target of the module, found by `go test -list '^Fuzz' ./...`, run alone for "+
			"%d executions on %d workers (one per core) from its seed corpus: the package's testdata/fuzz/<target>/ "+
			"(seeds), and what the fuzzing engine kept in the Go build cache from earlier runs. corpus is the engine's "+
			"count at the end, interesting inputs found included. The duration includes building the test binary; "+
			"exec/s is executions over the engine's own fuzzing time (whole seconds), minimizing new inputs "+
			"(-fuzzminimizetime) included. A failure leaves its input in testdata/fuzz/<target>/, which go test "+
			"runs from then on as a regression test. Without -fuzz, go test runs every seed corpus: the short form "+
			"of this part in make test.", o.FuzzExecs, o.Workers),
		Columns: []string{"package", "target", "seeds", "executions", "duration", "exec/s", "corpus"},
	}
	start := time.Now()
	targets, broken, err := listTargets(ctx, o.Module, o.Match)
	if err != nil {
		return s, err
	}
	for _, b := range broken {
		s.Rows = append(s.Rows, Row{Cells: []string{b.Dir, buildRow, "", "", "", "", ""}, Command: b.Command, Failed: true, Detail: b.Detail})
	}
	fmt.Fprintf(log, "fuzz: %d targets, %d executions each\n", len(targets), o.FuzzExecs)
	for i, t := range targets {
		if ctx.Err() != nil {
			return s, ctx.Err()
		}
		fmt.Fprintf(log, "fuzz %d/%d: %s %s ... ", i+1, len(targets), t.Dir, t.Name)
		row := runTarget(ctx, o, t)
		if row.Failed {
			fmt.Fprintf(log, "FAILED: %s\n", row.Detail)
		} else {
			fmt.Fprintf(log, "%s executions in %s\n", row.Cells[3], row.Cells[4])
		}
		s.Rows = append(s.Rows, row)
	}
	s.Duration = Seconds(time.Since(start).Seconds())
	return s, nil
}

// buildRow is the target cell of a package whose tests did not build.
const buildRow = "(build)"

// broken is a package whose tests do not build: its targets could not be
// listed.
type broken struct {
	Dir, Command, Detail string
}

// listTargets lists the fuzz targets of every package under module whose
// "dir Name" matches match, in package order.
func listTargets(ctx context.Context, module string, match *regexp.Regexp) ([]target, []broken, error) {
	cmd := command(ctx, module, "go", "test", "-list", "^Fuzz", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	targets, failed := parseList(out, modulePath(module))
	if err != nil && len(failed) == 0 {
		return nil, nil, fmt.Errorf("go test -list '^Fuzz' ./...: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	var bs []broken
	for _, dir := range failed {
		bs = append(bs, broken{Dir: dir, Command: "go test -list '^Fuzz' ./" + dir, Detail: "its tests do not build: " + firstLines(stderr.String(), 3)})
	}
	var kept []target
	for _, t := range targets {
		if match == nil || match.MatchString(t.Dir+" "+t.Name) {
			kept = append(kept, t)
		}
	}
	return kept, bs, nil
}

// parseList reads the output of go test -list over several packages: each
// package's names, then its "ok" line; a package that did not build has a
// FAIL line instead, and its directory is returned in failed.
func parseList(out []byte, modPath string) (targets []target, failed []string) {
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 1 && strings.HasPrefix(f[0], "Fuzz"):
			names = append(names, f[0])
		case len(f) >= 2 && (f[0] == "ok" || f[0] == "?"):
			for _, n := range names {
				targets = append(targets, target{Pkg: f[1], Dir: relDir(f[1], modPath), Name: n})
			}
			names = nil
		case len(f) >= 2 && f[0] == "FAIL":
			failed = append(failed, relDir(f[1], modPath))
			names = nil
		}
	}
	return targets, failed
}

func relDir(pkg, modPath string) string {
	if pkg == modPath {
		return "."
	}
	return strings.TrimPrefix(pkg, modPath+"/")
}

var (
	// "fuzz: elapsed: 21s, execs: 359943 (5003/sec), new interesting: 138 (total: 147)"
	progressRE = regexp.MustCompile(`^fuzz: elapsed: (\S+), execs: (\d+) \(\d+/sec\), new interesting: \d+ \(total: (\d+)\)`)
	// "Failing input written to testdata/fuzz/FuzzLoad/7e96db8371f5b7e2"
	failingRE = regexp.MustCompile(`Failing input written to (\S+)`)
)

// fuzzResult is what the output of one go test -fuzz run says.
type fuzzResult struct {
	Execs, Corpus int64
	Elapsed       time.Duration // fuzzing, as the engine counts it (whole seconds)
	Input         string        // the failing input, relative to the package
	Message       string        // the first line of the failure
}

// parseFuzz reads the output of go test -fuzz.
func parseFuzz(out []byte) fuzzResult {
	var r fuzzResult
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	inFailure := false
	for sc.Scan() {
		l := sc.Text()
		if m := progressRE.FindStringSubmatch(l); m != nil {
			r.Elapsed, _ = time.ParseDuration(m[1])
			r.Execs, _ = strconv.ParseInt(m[2], 10, 64)
			r.Corpus, _ = strconv.ParseInt(m[3], 10, 64)
			continue
		}
		if m := failingRE.FindStringSubmatch(l); m != nil {
			r.Input = m[1]
			continue
		}
		if strings.HasPrefix(l, "--- FAIL") {
			inFailure = true
			continue
		}
		if t := strings.TrimSpace(l); inFailure && r.Message == "" && t != "" && !strings.HasPrefix(t, "--- FAIL") {
			r.Message = t
		}
	}
	return r
}

// runTarget fuzzes one target and returns its row.
func runTarget(ctx context.Context, o options, t target) Row {
	args := []string{"test", "-run", "^$", "-fuzz", "^" + t.Name + "$", "-fuzztime", fmt.Sprintf("%dx", o.FuzzExecs),
		"-fuzzminimizetime", o.Minimize, "-timeout", "0", "-parallel", strconv.Itoa(o.Workers), "./" + t.Dir}
	row := Row{Command: "go " + shellJoin(args)}
	seeds := countSeeds(filepath.Join(o.Module, t.Dir, "testdata", "fuzz", t.Name))
	cmd := command(ctx, o.Module, "go", args...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	r := parseFuzz(out)
	rate := ""
	if r.Elapsed > 0 {
		rate = strconv.FormatInt(int64(float64(r.Execs)/r.Elapsed.Seconds()), 10)
	}
	row.Cells = []string{t.Dir, t.Name, strconv.Itoa(seeds), strconv.FormatInt(r.Execs, 10), d.Round(time.Second).String(), rate, strconv.FormatInt(r.Corpus, 10)}
	row.Duration = Seconds(d.Seconds())
	if err != nil {
		row.Failed = true
		row.Detail = r.Message
		if row.Detail == "" {
			row.Detail = fmt.Sprintf("%v: %s", err, firstLines(lastLines(string(out), 3), 3))
		}
		if r.Input != "" {
			kept := filepath.ToSlash(filepath.Join(t.Dir, r.Input))
			row.Detail += fmt.Sprintf("; input kept in %s, rerun with `go test -run '^%s$/^%s$' ./%s`", kept, t.Name, filepath.Base(r.Input), t.Dir)
		}
	}
	return row
}

// countSeeds counts the corpus files of a target in testdata.
func countSeeds(dir string) int {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		if e.Type().IsRegular() {
			n++
		}
	}
	return n
}

// command is a go command run in the module's root, in a process group of
// its own, so that cancelling it stops the test binaries and the fuzzing
// workers it starts as well.
func command(ctx context.Context, dir, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd
}

// shellJoin quotes args for a POSIX shell where they need it.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " $^*?[]'\"\\|&;<>()") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[:min(n, len(lines))], " / ")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
