package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// powerKills is how many times the campaign kills each operation; -short
// kills each shortPowerKills times.
const (
	powerKills      = 250
	shortPowerKills = 16
)

const (
	powerPkg = "./cmd/updater"
	// powerTests kill the updater's apply, commit, rollback and boot, and
	// the installer.
	powerTests = "^(TestPowerCutsDuringApply|TestPowerCutsInBootState|TestPowerCutsDuringInstall)$"
	// powerTimeout guards the whole run (about an hour for the campaign)
	// so that a hung one fails the part instead of the night.
	powerTimeout = "4h"
)

// powerOp is what the test said about one operation it killed: its line
// "power: op=commit test=TestPowerCutsInBootState/commit kills=250 ended=31
// seed=7 took=2m3s phases=after-write:40,before-write:150,...".
type powerOp struct {
	Op, Test     string
	Kills, Ended int
	Seed         int64
	Took         time.Duration
	Phases       map[string]int
	Failed       bool
	Detail       string
	phaseOrder   []string
	hasW         bool // the phases are the steps of a boot-state save
}

var powerLineRE = regexp.MustCompile(`power: op=(\S+) test=(\S+) kills=(\d+) ended=(\d+) seed=(-?\d+) took=(\S+) phases=(\S*)`)

// powerPart runs the power-cut tests of cmd/updater with powerKills kills
// of each operation and gives a row per operation.
func powerPart(ctx context.Context, o options, log io.Writer) (Section, error) {
	kills := powerKills
	if o.Short {
		kills = shortPowerKills
	}
	seed := time.Now().Unix() % 1_000_000
	s := Section{
		Part:  "power",
		Title: "Power cuts",
		About: fmt.Sprintf("The power-cut tests of cmd/updater, each operation killed %d times: a real updater process "+
			"(apply from the channel and from a local release directory, commit, rollback, and boot with its health gate "+
			"passing, the commit write, or failing, the mark-bad write) and the installer, with every process it started, "+
			"by SIGKILL at a seeded random instant, on a disk installed on a loop device whose data partition the updater "+
			"mounts itself (an offset loop device) and keeps its state on. Instants are uniform over the time a whole run "+
			"takes (the longest of the last that ended before their kill); for the boot-state writes three in four are drawn "+
			"around where the write starts, learnt from where the kills land. A run that ends before its kill is counted "+
			"as ended, not as a kill. After each kill: the boot state loads and both copies hold a state the operation "+
			"writes, GRUB's choice (the Go model of grub.cfg) is the committed slot or an armed slot holding the release, "+
			"the data partition passes e2fsck -fn, and no byte changed outside the updater's state: the gaps around the "+
			"partitions (MBR, GPTs), the BIOS boot partition, the ESP but its four environment blocks, the slots the "+
			"operation does not write, every file of the data partition outside twinroot/state; then the interrupted "+
			"operation finishes in an un-killed run. phases counts the kills by what the disk showed: for apply, its boot "+
			"state; for the boot-state writes, how many of the save's six block writes (lock, env, lock of each copy) "+
			"were on the disk; in the write counts the kills inside the save. A kill is a process kill: the kernel "+
			"survives it and writes back its caches, so this proves the updater's write order, not the disk's; torn "+
			"sector writes booted on real GRUB are the QEMU scenarios'. Seed %d.", kills, seed),
		Columns: []string{"operation", "kills", "ended first", "in the write", "phases", "duration"},
	}
	start := time.Now()
	fmt.Fprintf(log, "power: %d kills of each operation, seed %d ... ", kills, seed)
	tmp, err := os.MkdirTemp(o.Work, "power-")
	if err != nil {
		return s, err
	}
	defer os.RemoveAll(tmp)
	env := []string{"CI=1", "TWINROOT_POWER_KILLS=" + strconv.Itoa(kills), "TWINROOT_POWER_SEED=" + strconv.FormatInt(seed, 10)}
	cmd := command(ctx, o.Module, "go", "test", "-count=1", "-json", "-timeout", powerTimeout, "-run", powerTests, powerPkg)
	cmd.Env = append(append(os.Environ(), env...), "TMPDIR="+tmp)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, runErr := cmd.Output()
	if ctx.Err() != nil {
		return s, ctx.Err()
	}
	ops, tail := parsePower(out)
	if len(ops) == 0 {
		detail := firstLines(stderr.String()+"\n"+tail, 3)
		if runErr != nil {
			detail = fmt.Sprintf("%v: %s", runErr, detail)
		}
		ops = []powerOp{{Op: "(all)", Test: powerTests, Failed: true, Detail: detail}}
	}
	total := 0
	for _, op := range ops {
		total += op.Kills
		s.Rows = append(s.Rows, op.row(env))
	}
	fmt.Fprintf(log, "%d kills in %s\n", total, time.Since(start).Round(time.Second))
	s.Duration = Seconds(time.Since(start).Seconds())
	return s, nil
}

// row is the report's row of op, with the command that repeats its kills.
func (op powerOp) row(env []string) Row {
	var phases []string
	for _, p := range op.phaseOrder {
		phases = append(phases, fmt.Sprintf("%s %d", p, op.Phases[p]))
	}
	inWrite := ""
	if op.hasW {
		n := 0
		for p, k := range op.Phases {
			if p != "before-write" && p != "after-write" {
				n += k
			}
		}
		inWrite = strconv.Itoa(n)
	}
	var re []string
	for _, p := range strings.Split(op.Test, "/") {
		re = append(re, "^"+regexp.QuoteMeta(p)+"$")
	}
	r := Row{
		Cells:   []string{op.Op, strconv.Itoa(op.Kills), strconv.Itoa(op.Ended), inWrite, strings.Join(phases, ", "), op.Took.Round(time.Second).String()},
		Command: strings.Join(env, " ") + " go " + shellJoin([]string{"test", "-count=1", "-v", "-timeout", powerTimeout, "-run", strings.Join(re, "/"), powerPkg}),
		Failed:  op.Failed,
		Detail:  op.Detail,
	}
	if op.Failed {
		r.Cells = []string{op.Op, "", "", "", "", ""}
	}
	return r
}

// parsePower reads the go test -json output of the power-cut tests: a
// power line for each operation that ran to its end, and the result of
// each test, which names those that failed. It returns the last lines of
// output too, for a run that said nothing of use.
func parsePower(out []byte) ([]powerOp, string) {
	var ops []powerOp
	var tests, all []string
	result := map[string]string{}
	output := map[string][]string{}
	scanEvents(out, func(e testEvent) {
		switch e.Action {
		case "run":
			tests = append(tests, e.Test)
		case "pass", "fail", "skip":
			result[e.Test] = e.Action
		case "output":
			l := strings.TrimRight(e.Output, "\n")
			output[e.Test] = append(output[e.Test], l)
			all = append(all, l)
			if m := powerLineRE.FindStringSubmatch(l); m != nil {
				ops = append(ops, parsePowerLine(m))
			}
		}
	})
	// A test with no subtests of its own that did not pass is a failed
	// operation: the line of its failure says why.
	for _, t := range tests {
		if result[t] == "pass" || slices.ContainsFunc(tests, func(u string) bool { return strings.HasPrefix(u, t+"/") }) {
			continue
		}
		op := powerOp{Op: t, Test: t, Failed: true, Detail: failureLine(result[t], output[t])}
		if i := slices.IndexFunc(ops, func(o powerOp) bool { return o.Test == t }); i >= 0 {
			ops[i].Failed, ops[i].Detail = true, op.Detail
			continue
		}
		ops = append(ops, op)
	}
	return ops, lastLines(strings.Join(all, "\n"), 3)
}

func parsePowerLine(m []string) powerOp {
	op := powerOp{Op: m[1], Test: m[2], Phases: map[string]int{}}
	op.Kills, _ = strconv.Atoi(m[3])
	op.Ended, _ = strconv.Atoi(m[4])
	op.Seed, _ = strconv.ParseInt(m[5], 10, 64)
	op.Took, _ = time.ParseDuration(m[6])
	for _, f := range strings.Split(m[7], ",") {
		name, n, ok := strings.Cut(f, ":")
		if !ok {
			continue
		}
		op.Phases[name], _ = strconv.Atoi(n)
		op.hasW = op.hasW || name == "before-write" || name == "after-write"
	}
	op.phaseOrder = phaseOrder(op.Phases)
	return op
}

// phaseOrder lists phases in the order they happen, as far as the names
// tell: the six steps of a boot-state save, apply's boot states, and any
// other name after them.
func phaseOrder(phases map[string]int) []string {
	known := []string{"before-prepare", "writing-slot-b", "after-arm", "before-boot-code", "after-boot-code",
		"before-write", "first-lock-set", "first-env-written", "first-copy-done", "second-lock-set", "second-env-written", "after-write"}
	var names []string
	for p := range phases {
		names = append(names, p)
	}
	slices.SortFunc(names, func(a, b string) int {
		ia, ib := slices.Index(known, a), slices.Index(known, b)
		if ia < 0 {
			ia = len(known)
		}
		if ib < 0 {
			ib = len(known)
		}
		if ia != ib {
			return ia - ib
		}
		return strings.Compare(a, b)
	})
	return names
}
