package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// storeRounds is how many times the campaign runs the store-fault table
// (half a minute to a minute each): enough for a case that passes by luck
// of timing to fail in some round.
const storeRounds = 20

const (
	storeTest = "TestStoreFaults"
	storePkg  = "./internal/agent"
	// storeTimeout guards one round (a few minutes) so that a hung one
	// fails the part instead of the night.
	storeTimeout = "30m"
)

// storeObjects are the objects a device fetches, in the order of the
// test's requests column.
var storeObjects = []string{"latest.json", "chunks.idx", "slot.img.zst"}

// storeCase is one case of one round: a row of the test's table joined
// with its subtest's result.
type storeCase struct {
	Store, Object, Fault string
	Test                 string // the subtest, for -run
	Outcome, Exit        string
	Requests             []int // at the proxy, by storeObjects
	Retries              int   // requests for the faulted object beyond the clean round's
	Took                 time.Duration
	Failed               bool
	Detail               string
}

// storePart runs the store-fault test of internal/agent (TestStoreFaults:
// every fault of the fault proxy on every object a device fetches, against
// MinIO and versitygw) o.StoreRounds times, one round per go test, and
// gives a row per store and case over the rounds.
func storePart(ctx context.Context, o options, log io.Writer) (Section, error) {
	rounds := o.StoreRounds
	if o.Short {
		rounds = 1
	}
	if rounds < 1 {
		return Section{}, fmt.Errorf("-store-rounds %d: want at least 1", rounds)
	}
	s := Section{
		Part:    "store",
		Title:   "Store faults",
		Columns: []string{"store", "object", "fault", "passed", "outcome", "exit", "requests", "retries", "time (median)", "time (max)"},
	}
	start := time.Now()
	var all [][]storeCase
	policy := ""
	for i := range rounds {
		if ctx.Err() != nil {
			return s, ctx.Err()
		}
		fmt.Fprintf(log, "store %d/%d: %s ... ", i+1, rounds, storeTest)
		began := time.Now()
		r, err := storeRound(ctx, o)
		if err != nil {
			return s, err
		}
		cases := r.Cases
		policy = orElse(policy, r.Policy)
		failed := 0
		for _, c := range cases {
			if c.Failed {
				failed++
			}
		}
		fmt.Fprintf(log, "%d cases, %d failed, in %s\n", len(cases), failed, time.Since(began).Round(time.Second))
		all = append(all, cases)
	}
	s.Rows = storeRows(all)
	s.About = fmt.Sprintf("The store-fault table of internal/agent (`%s`), run %d times: whole rounds of the channel (check, then "+
		"apply into a disk file) against MinIO and versitygw through the fault proxy, each fault on each object a device "+
		"fetches, once (the round must end armed) and always (it must fail as the README says). %s "+
		"passed counts the rounds in which the case held all the test asserts: never a slot armed with other bytes than "+
		"the signed ones, the exit code and one-line error of the README, slot a and what GRUB boots unchanged, the "+
		"requests and the time within the retry policy. requests are counted at the proxy, by object (%s); retries are "+
		"the requests for the faulted object beyond the clean round's of the same round (retries and refetched chunks); "+
		"time is the round's, the median and the most over the rounds. CI=1 makes a missing server fail the test "+
		"rather than skip it.", storeTest, len(all), policy, strings.Join(storeObjects, ", "))
	s.Duration = Seconds(time.Since(start).Seconds())
	return s, nil
}

// orElse is a, or b when a is empty.
func orElse(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// storeRound runs the test once, with its temporary files in a directory
// of its own: a round that dies before its cleanup (a time-out, a cancel)
// leaves servers behind, found there by their data directory and killed.
func storeRound(ctx context.Context, o options) (storeRun, error) {
	tmp, err := os.MkdirTemp(o.Work, "store-round-")
	if err != nil {
		return storeRun{}, err
	}
	defer os.RemoveAll(tmp)
	// The test runs in its package's directory: TMPDIR must not be relative.
	if tmp, err = filepath.Abs(tmp); err != nil {
		return storeRun{}, err
	}
	defer killUnder(tmp)
	args := []string{"test", "-count=1", "-json", "-timeout", storeTimeout, "-run", "^" + storeTest + "$", storePkg}
	cmd := command(ctx, o.Module, "go", args...)
	cmd.Env = append(os.Environ(), "CI=1", "TMPDIR="+tmp)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ctx.Err() != nil {
		return storeRun{}, ctx.Err()
	}
	r := parseStore(out)
	if len(r.Cases) == 0 {
		detail := firstLines(stderr.String()+"\n"+r.Tail, 3)
		if err != nil {
			detail = fmt.Sprintf("%v: %s", err, detail)
		}
		r.Cases = []storeCase{{Store: "(all)", Object: "-", Fault: "(no cases)", Test: storeTest, Failed: true, Detail: detail}}
	}
	return r, nil
}

// killUnder kills the processes whose command line names a path under dir.
func killUnder(dir string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte(dir+"/")) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil && pid != os.Getpid() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// testEvent is a line of go test -json.
type testEvent struct {
	Action, Test, Output string
}

// scanEvents calls fn with each event of go test -json output, skipping
// lines that are not one (the build's own output).
func scanEvents(out []byte, fn func(testEvent)) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e testEvent
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			fn(e)
		}
	}
}

var (
	// "store faults: 3-try policy waiting 50ms..200ms, stall time-out 1s, drip a byte every 100ms"
	policyRE = regexp.MustCompile(`^store faults: (.*)$`)
	// the columns of the test's table are two spaces apart at least
	columnsRE = regexp.MustCompile(`\s{2,}`)
	// "    store_faults_test.go:456: round = ..."
	testLineRE = regexp.MustCompile(`^\s*\S+\.go:\d+: `)
)

// storeRun is what the go test -json output of one round says.
type storeRun struct {
	Cases  []storeCase
	Policy string // the test's retry policy and fault timings
	Tail   string // the last lines of output
}

// parseStore reads the go test -json output of one round: the table the
// test prints at its end (a row for each case that ran to its end), and
// the result of each subtest, which names the cases that failed or did not
// finish.
func parseStore(out []byte) storeRun {
	var (
		cases  []storeCase
		policy string
		all    []string
	)
	var tests []string // in the order they started
	result := map[string]string{}
	output := map[string][]string{}
	var table [][]string
	inTable := false
	scanEvents(out, func(e testEvent) {
		switch e.Action {
		case "run":
			tests = append(tests, e.Test)
		case "pass", "fail", "skip":
			result[e.Test] = e.Action
		case "build-output":
			all = append(all, strings.TrimRight(e.Output, "\n"))
		case "output":
			l := strings.TrimRight(e.Output, "\n")
			output[e.Test] = append(output[e.Test], l)
			all = append(all, l)
			f := columnsRE.Split(strings.TrimSpace(l), 8)
			switch {
			case policyRE.MatchString(l):
				policy = policyRE.FindStringSubmatch(l)[1] + "."
			case len(f) >= 7 && f[0] == "store" && f[3] == "outcome":
				inTable = true
			case inTable && len(f) >= 7:
				table = append(table, f)
			default:
				inTable = false
			}
		}
	})
	clean := map[string][]int{}
	for _, f := range table {
		c := storeCase{Store: f[0], Object: f[1], Fault: f[2], Outcome: f[3], Exit: f[4], Requests: parseRequests(f[5])}
		c.Took, _ = time.ParseDuration(f[6])
		if c.Fault == "clean" {
			c.Test = storeTest + "/" + c.Store
			clean[c.Store] = c.Requests
		}
		cases = append(cases, c)
	}
	// The subtests: TestStoreFaults/<store> runs the clean round, then
	// TestStoreFaults/<store>/<object>/<fault> each case.
	for _, t := range tests {
		parts := strings.Split(t, "/")
		if len(parts) < 2 || parts[0] != storeTest {
			continue
		}
		store := parts[1]
		var i int
		if len(parts) == 2 {
			i = slices.IndexFunc(cases, func(c storeCase) bool { return c.Store == store && c.Fault == "clean" })
		} else {
			i = slices.IndexFunc(cases, func(c storeCase) bool {
				return c.Test == "" && c.Store == store && strings.ReplaceAll(c.Fault, " ", "_") == parts[3] &&
					(c.Object == parts[2] || !slices.Contains(storeObjects, c.Object))
			})
		}
		if i < 0 {
			if len(parts) == 3 || (len(parts) == 2 && result[t] == "pass") {
				continue
			}
			fault := "clean"
			object := "-"
			if len(parts) == 4 {
				object, fault = parts[2], strings.ReplaceAll(parts[3], "_", " ")
			}
			cases = append(cases, storeCase{Store: store, Object: object, Fault: fault})
			i = len(cases) - 1
		}
		c := &cases[i]
		c.Test = t
		if len(parts) == 2 || result[t] == "pass" {
			continue
		}
		c.Failed = true
		c.Detail = failureLine(result[t], output[t])
	}
	for i, c := range cases {
		if j := slices.Index(storeObjects, c.Object); j >= 0 && len(c.Requests) == len(storeObjects) && clean[c.Store] != nil {
			cases[i].Retries = max(0, c.Requests[j]-clean[c.Store][j])
		}
	}
	return storeRun{Cases: cases, Policy: policy, Tail: lastLines(strings.Join(all, "\n"), 3)}
}

// failureLine says why a subtest did not pass: its last line from t.Error,
// t.Fatal or t.Skip, or that it did not finish.
func failureLine(result string, lines []string) string {
	why := ""
	for _, l := range lines {
		if testLineRE.MatchString(l) {
			why = strings.TrimSpace(l)
		}
	}
	switch {
	case result == "":
		return "did not finish: " + orElse(why, "no output")
	case result == "skip":
		return "skipped: " + why
	}
	return why
}

// parseRequests reads the test's "[1 1 2]".
func parseRequests(s string) []int {
	var n []int
	for _, f := range strings.Fields(strings.Trim(s, "[]")) {
		v, err := strconv.Atoi(f)
		if err != nil {
			return nil
		}
		n = append(n, v)
	}
	return n
}

// storeRows sums up the rounds: a row per store and case, by store, each
// store's cases in the order of the first round that has them.
func storeRows(rounds [][]storeCase) []Row {
	type key struct{ store, object, fault string }
	var order []key
	byKey := map[key][]storeCase{}
	for _, cases := range rounds {
		for _, c := range cases {
			k := key{c.Store, c.Object, c.Fault}
			if _, ok := byKey[k]; !ok {
				order = append(order, k)
			}
			byKey[k] = append(byKey[k], c)
		}
	}
	slices.SortStableFunc(order, func(a, b key) int { return strings.Compare(a.store, b.store) })
	var rows []Row
	for _, k := range order {
		cs := byKey[k]
		var outcomes, exits, requests, details []string
		var retries []int
		var took []time.Duration
		passed := 0
		for _, c := range cs {
			if c.Failed {
				details = append(details, c.Detail)
				continue
			}
			passed++
			outcomes = appendNew(outcomes, c.Outcome)
			exits = appendNew(exits, c.Exit)
			requests = appendNew(requests, fmt.Sprint(c.Requests))
			retries = append(retries, c.Retries)
			took = append(took, c.Took)
		}
		slices.Sort(retries)
		slices.Sort(took)
		row := Row{Command: storeCommand(cs[0].Test, len(rounds))}
		row.Cells = []string{k.store, k.object, k.fault, fmt.Sprintf("%d/%d", passed, len(rounds)),
			strings.Join(outcomes, ", "), strings.Join(exits, ", "), strings.Join(requests, ", "), span(retries), "", ""}
		if len(took) > 0 {
			row.Cells[8], row.Cells[9] = took[len(took)/2].String(), took[len(took)-1].String()
		}
		if passed < len(rounds) {
			row.Failed = true
			row.Detail = fmt.Sprintf("failed in %d of %d rounds: %s", len(rounds)-passed, len(rounds), orElse(firstOf(details), "not in the test's table"))
		}
		rows = append(rows, row)
	}
	return rows
}

// storeCommand reproduces one case for n rounds; the store's clean round
// runs before it, as it does in the whole table.
func storeCommand(test string, n int) string {
	var re []string
	for _, p := range strings.Split(test, "/") {
		re = append(re, "^"+regexp.QuoteMeta(p)+"$")
	}
	if len(re) == 2 {
		re = append(re, "^$") // the clean round alone
	}
	return "CI=1 go " + shellJoin([]string{"test", "-count=" + strconv.Itoa(n), "-v", "-run", strings.Join(re, "/"), storePkg})
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

func firstOf(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// span writes sorted numbers as their range: "1", "1–3".
func span(n []int) string {
	switch {
	case len(n) == 0:
		return ""
	case n[0] == n[len(n)-1]:
		return strconv.Itoa(n[0])
	}
	return fmt.Sprintf("%d–%d", n[0], n[len(n)-1])
}
