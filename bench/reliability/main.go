package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/modfile"

	"github.com/twinroot/twinroot/bench/internal/harness"
)

// part is one kind of trial of the campaign. run does the trials and gives
// their section of the report; a trial that fails is a row marked failed,
// and an error means the part could not run at all.
type part struct {
	name string
	run  func(ctx context.Context, o options, log io.Writer) (Section, error)
}

// parts is the campaign, in the order it runs. Power cuts, store faults,
// disk faults, the clock and the watchdog join here.
var parts = []part{
	{"fuzz", fuzzPart},
	{"store", storePart},
	{"power", powerPart},
	{"qemu-power", qemuPowerPart},
}

type options struct {
	harness.Common
	Parts     []string
	Short     bool
	FuzzExecs int64
	Workers   int
	Minimize  string         // -fuzzminimizetime of each fuzz run
	Match     *regexp.Regexp // fuzz targets whose "dir Name" matches; nil: all
	Report    string         // the markdown report's path; empty: none
	Keep      bool           // keep what the report holds of parts and fuzz targets not run
	Module    string         // the module's root directory

	StoreRounds int // runs of the store-fault table
}

func (o options) validate() error {
	for _, p := range o.Parts {
		if !slices.ContainsFunc(parts, func(q part) bool { return q.name == p }) {
			return fmt.Errorf("-parts: no part %q (the parts: %s)", p, strings.Join(partNames(), ", "))
		}
	}
	switch {
	case len(o.Parts) == 0:
		return errors.New("-parts: name at least one part")
	case o.FuzzExecs < 1:
		return fmt.Errorf("-fuzz-execs %d: want at least 1", o.FuzzExecs)
	case o.Workers < 1:
		return fmt.Errorf("-workers %d: want at least 1", o.Workers)
	}
	if _, err := time.ParseDuration(o.Minimize); err != nil && !regexp.MustCompile(`^\d+x$`).MatchString(o.Minimize) {
		return fmt.Errorf("-fuzz-minimize %q: want a duration or a count such as 100x", o.Minimize)
	}
	return nil
}

func partNames() []string {
	var names []string
	for _, p := range parts {
		names = append(names, p.name)
	}
	return names
}

func main() {
	o := options{}
	cli := harness.New("reliability", "./bench/reliability", usage, &o.Common)
	fs := cli.Flags
	partList := fs.String("parts", strings.Join(partNames(), ","), "parts of the campaign to run, comma-separated: "+strings.Join(partNames(), ", "))
	fs.BoolVar(&o.Short, "short", false, fmt.Sprintf("the quick form of each part (fuzzing: %d executions per target unless -fuzz-execs says otherwise)", shortExecs))
	fs.Int64Var(&o.FuzzExecs, "fuzz-execs", campaignExecs, "executions of each fuzz target")
	fs.IntVar(&o.Workers, "workers", runtime.NumCPU(), "fuzzing workers per target (go test -parallel)")
	fs.IntVar(&o.StoreRounds, "store-rounds", storeRounds, "runs of the store-fault table (one with -short)")
	fs.StringVar(&o.Minimize, "fuzz-minimize", "1000x", "executions (or time, 5s) the fuzzing engine spends minimizing each new input (go test -fuzzminimizetime)")
	match := fs.String("fuzz-match", "", "only the fuzz targets whose \"dir Name\" matches this regular expression")
	fs.StringVar(&o.Report, "report", "docs/reliability.md", "where to write the markdown report (and its JSON twin, .json), relative to the module's root; empty: nowhere")
	fs.BoolVar(&o.Keep, "keep", false, "keep the parts and fuzz targets of the report (its JSON twin) that this run does not redo: the campaign in slices")
	exit, ok := cli.Parse(os.Args[1:], func() error {
		for _, p := range strings.Split(*partList, ",") {
			if p = strings.TrimSpace(p); p != "" {
				o.Parts = append(o.Parts, p)
			}
		}
		if o.Short && !flagSet(fs, "fuzz-execs") {
			o.FuzzExecs = shortExecs
		}
		if *match != "" {
			re, err := regexp.Compile(*match)
			if err != nil {
				return fmt.Errorf("-fuzz-match: %v", err)
			}
			o.Match = re
		}
		root, err := moduleRoot()
		if err != nil {
			return err
		}
		o.Module = root
		return o.validate()
	})
	if !ok {
		os.Exit(exit)
	}
	var failures int
	code := harness.Main(cli, func(ctx context.Context, log io.Writer) (Report, error) {
		rep, err := run(ctx, o, os.Args[1:], log)
		failures = rep.Failures()
		return rep, err
	}, writeMarkdown)
	if code == harness.ExitOK && failures > 0 {
		fmt.Fprintf(cli.Stderr, "reliability: %d trial(s) failed\n", failures)
		code = harness.ExitFail
	}
	os.Exit(code)
}

const usage = `Runs the reliability campaign on this machine and writes docs/reliability.md:
for each part (-parts), its trials, each with its figures and the command
that reproduces them. The fuzzing part runs every fuzz target of the module
for -fuzz-execs executions. A failed trial does not stop the others; the
program exits 1 when any failed. Progress goes to stderr, the report to
stdout as well.`

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// run runs the chosen parts and writes the report.
func run(ctx context.Context, o options, args []string, log io.Writer) (Report, error) {
	rep := Report{Date: time.Now().UTC(), Command: "go run ./bench/reliability", Machine: machine(ctx, o.Module), Commit: commit(ctx, o.Module, o.Report)}
	if len(args) > 0 {
		rep.Command += " " + shellJoin(args)
	}
	switch {
	case o.Short:
		rep.Short, rep.Why = true, "-short"
	case slices.Contains(o.Parts, "fuzz") && o.FuzzExecs < campaignExecs:
		rep.Short, rep.Why = true, fmt.Sprintf("%d executions per fuzz target, the campaign's are %d", o.FuzzExecs, campaignExecs)
	case len(o.Parts) < len(parts) || o.Match != nil:
		rep.Short, rep.Why = true, partialWhy+strings.Join(o.Parts, ", ")
	}
	rep.RunShort, rep.RunWhy = rep.Short, rep.Why
	start := time.Now()
	for _, p := range parts {
		if !slices.Contains(o.Parts, p.name) {
			continue
		}
		s, err := p.run(ctx, o, log)
		if err != nil {
			return rep, fmt.Errorf("%s: %w", p.name, err)
		}
		rep.Sections = append(rep.Sections, s)
	}
	rep.Duration = Seconds(time.Since(start).Seconds())
	if o.Report == "" {
		return rep, nil
	}
	path := filepath.Join(o.Module, o.Report)
	twin := strings.TrimSuffix(path, filepath.Ext(path)) + ".json"
	if o.Keep {
		old, err := loadReport(twin)
		if err != nil {
			return rep, err
		}
		rep = keep(old, rep)
		targets, _, err := listTargets(ctx, o.Module, nil)
		if err != nil {
			return rep, err
		}
		rep.Short, rep.Why = false, ""
		if why := incomplete(rep, targets); why != "" {
			rep.Short, rep.Why = true, why
		}
	}
	var md bytes.Buffer
	if err := writeMarkdown(&md, rep); err != nil {
		return rep, err
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return rep, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return rep, err
	}
	if err := errors.Join(os.WriteFile(path, md.Bytes(), 0o644), os.WriteFile(twin, append(js, '\n'), 0o644)); err != nil {
		return rep, err
	}
	fmt.Fprintf(log, "reliability: report written to %s and %s\n", o.Report, strings.TrimPrefix(twin, o.Module+"/"))
	return rep, nil
}

// moduleRoot is the directory of the go.mod the go command uses here.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", errors.New("run from inside the twinroot module")
	}
	return filepath.Dir(gomod), nil
}

// modulePath is the module's path, as package import paths start.
func modulePath(root string) string {
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return ""
	}
	return modfile.ModulePath(b)
}

// commit names the tree: the commit, and "(with uncommitted changes)" when
// the work tree differs from it, the report's own files aside.
func commit(ctx context.Context, root, report string) string {
	out, err := command(ctx, root, "git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	status := []string{"status", "--porcelain", "--untracked-files=no"}
	if report != "" {
		// The report itself, written by the slice before, is no change to
		// what the run measures.
		twin := strings.TrimSuffix(report, filepath.Ext(report)) + ".json"
		status = append(status, "--", ".", ":!"+report, ":!"+twin)
	}
	if st, err := command(ctx, root, "git", status...).Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		c += " (with uncommitted changes)"
	}
	return c
}

// machine describes this machine.
func machine(ctx context.Context, root string) Machine {
	m := Machine{CPU: "unknown", Cores: runtime.NumCPU(), Memory: "unknown", Kernel: "unknown", Go: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
				if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
					m.Memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := command(ctx, root, "go", "env", "GOVERSION").Output(); err == nil {
		m.Go = strings.TrimSpace(string(out))
	}
	return m
}
