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

// qemuCuts is how many times the campaign cuts each guest's power during
// its update; -short cuts it shortQEMUCuts times (make test's count).
const (
	qemuCuts      = 20
	shortQEMUCuts = 4
)

const (
	qemuPkg = "./qemu"
	// qemuPowerTest powers the minimal system, then the Debian system,
	// off during an update, under SeaBIOS and OVMF side by side.
	qemuPowerTest = "^(TestScenarioPowerCutDuringUpdate|TestScenarioDebianPowerCut)$"
	qemuTimeout   = "3h"
)

var (
	// "v2 committed after 20 power cuts in its apply and 23 boots"
	qemuDoneRE = regexp.MustCompile(`v2 committed after (\d+) power cuts in its apply and (\d+) boots`)
	// "cut 3: power off 4.05s after "applying" ...; journal 24454333 of 48771072 bytes (50%), ..."
	qemuCutRE = regexp.MustCompile(`cut (\d+): power off ([\d.]+)s after "applying".*?(?:journal (\d+) of (\d+) bytes|(b was already verified and armed))`)
	// "scenario TestScenarioPowerCutDuringUpdate/bios took 4m41.9s"
	// (TestScenarioDebianPowerCut/bios for the Debian system)
	qemuTookRE = regexp.MustCompile(`scenario \S+ took (\S+)$`)
)

// qemuRun is what one firmware's guest went through.
type qemuRun struct {
	System      string // minimal or debian
	Firmware    string
	Cuts, Boots int
	Armed       int     // cuts that found slot b verified and armed
	MinAt       float64 // earliest and latest cut, seconds after "applying"
	MaxAt       float64
	MaxJournal  int // the journal's furthest point at a cut, percent
	Took        string
	Failed      bool
	Detail      string
}

// qemuPowerPart cuts a QEMU guest's power qemuCuts times during an update
// of the minimal system, under each firmware, and gives a row per firmware.
func qemuPowerPart(ctx context.Context, o options, log io.Writer) (Section, error) {
	cuts := qemuCuts
	if o.Short {
		cuts = shortQEMUCuts
	}
	seed := time.Now().Unix() % 1_000_000
	s := Section{
		Part:  "qemu-power",
		Title: "Power cuts under QEMU",
		About: fmt.Sprintf("TestScenarioPowerCutDuringUpdate and TestScenarioDebianPowerCut with %d cuts per firmware, under TCG. "+
			"The minimal system, installed at 1.0.0, takes 2.0.0 (a 24 MiB random payload) from MinIO through a 2 MiB/s throttle at boot; "+
			"the Debian system, installed at 1.0.0 with its two podman services running, takes 2.0.0 (a new web image) through a throttle "+
			"that stretches its fetch to about 16 s. "+
			"QEMU is killed (the guest loses power, its caches too) at a seeded random instant after the updater's "+
			"\"applying\" record, the instants spread over the fetch that is left. After each cut: the boot state holds "+
			"committed a with b writing (GRUB boots a) or a verified b armed for its trial; the data partition, its journal "+
			"replayed as the next mount would, passes e2fsck -fn; the host's updater status of the disk shows the "+
			"journal's progress, which never goes back. Then the guest is left alone: it resumes, fetches only what was "+
			"left, and commits 2.0.0 in its trial boot (on Debian, once both services are healthy). Seed %d.", cuts, seed),
		Columns: []string{"system", "firmware", "power cuts", "cut instants after \"applying\"", "furthest journal at a cut", "armed at a cut", "boots", "duration"},
	}
	start := time.Now()
	fmt.Fprintf(log, "qemu-power: %d cuts per firmware, seed %d ... ", cuts, seed)
	env := []string{"TWINROOT_POWERCUT_CUTS=" + strconv.Itoa(cuts), "TWINROOT_POWERCUT_DEBIAN_CUTS=" + strconv.Itoa(cuts),
		"TWINROOT_POWERCUT_SEED=" + strconv.FormatInt(seed, 10)}
	cmd := command(ctx, o.Module, "go", "test", "-count=1", "-json", "-timeout", qemuTimeout, "-run", qemuPowerTest, qemuPkg)
	cmd.Env = append(append(os.Environ(), env...), "CI=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, runErr := cmd.Output()
	if ctx.Err() != nil {
		return s, ctx.Err()
	}
	runs, tail := parseQEMUPower(out)
	if len(runs) == 0 {
		detail := firstLines(stderr.String()+"\n"+tail, 3)
		if runErr != nil {
			detail = fmt.Sprintf("%v: %s", runErr, detail)
		}
		runs = []qemuRun{{System: "(all)", Firmware: "(all)", Failed: true, Detail: detail}}
	}
	total := 0
	command := strings.Join(env, " ") + " go " + shellJoin([]string{"test", "-count=1", "-v", "-timeout", qemuTimeout, "-run", qemuPowerTest, qemuPkg})
	for _, r := range runs {
		total += r.Cuts
		row := Row{Command: command, Failed: r.Failed, Detail: r.Detail,
			Cells: []string{r.System, r.Firmware, strconv.Itoa(r.Cuts), fmt.Sprintf("%.2f–%.2f s", r.MinAt, r.MaxAt),
				fmt.Sprintf("%d %%", r.MaxJournal), strconv.Itoa(r.Armed), strconv.Itoa(r.Boots), r.Took}}
		if r.Failed {
			row.Cells = []string{r.System, r.Firmware, strconv.Itoa(r.Cuts), "", "", "", "", r.Took}
		}
		s.Rows = append(s.Rows, row)
	}
	fmt.Fprintf(log, "%d power cuts in %s\n", total, time.Since(start).Round(time.Second))
	s.Duration = Seconds(time.Since(start).Seconds())
	return s, nil
}

// qemuSystems names the system of each scenario of the part.
var qemuSystems = map[string]string{
	"TestScenarioPowerCutDuringUpdate": "minimal",
	"TestScenarioDebianPowerCut":       "debian",
}

// parseQEMUPower reads the go test -json output of the scenario: one run
// per firmware subtest, from its cut lines and its last line; a subtest
// that did not pass is a failed run.
func parseQEMUPower(out []byte) ([]qemuRun, string) {
	byTest := map[string]*qemuRun{}
	var order, all []string
	result := map[string]string{}
	output := map[string][]string{}
	scanEvents(out, func(e testEvent) {
		top, fw, sub := strings.Cut(e.Test, "/")
		switch e.Action {
		case "run":
			if sub && qemuSystems[top] != "" {
				order = append(order, e.Test)
				byTest[e.Test] = &qemuRun{System: qemuSystems[top], Firmware: fw, MinAt: -1}
			}
		case "pass", "fail", "skip":
			result[e.Test] = e.Action
		case "output":
			l := strings.TrimRight(e.Output, "\n")
			all = append(all, l)
			output[e.Test] = append(output[e.Test], l)
			if r := byTest[e.Test]; r != nil {
				r.add(l)
			}
		}
	})
	var runs []qemuRun
	for _, t := range order {
		r := byTest[t]
		if r.MinAt < 0 {
			r.MinAt = 0
		}
		if result[t] != "pass" {
			r.Failed, r.Detail = true, failureLine(result[t], output[t])
		} else if r.Boots == 0 {
			r.Failed, r.Detail = true, "passed without its last line (v2 committed after N power cuts)"
		}
		runs = append(runs, *r)
	}
	// A scenario that failed before its firmwares started (a build, MinIO).
	for top, system := range qemuSystems {
		if r := result[top]; r != "" && r != "pass" && !slices.ContainsFunc(runs, func(q qemuRun) bool { return q.System == system }) {
			runs = append(runs, qemuRun{System: system, Firmware: "(all)", Failed: true, Detail: failureLine(r, output[top])})
		}
	}
	return runs, lastLines(strings.Join(all, "\n"), 3)
}

// add takes in one line of a firmware's output.
func (r *qemuRun) add(l string) {
	if m := qemuCutRE.FindStringSubmatch(l); m != nil {
		r.Cuts++ // the last line says it again, once all are done
		at, _ := strconv.ParseFloat(m[2], 64)
		if r.MinAt < 0 || at < r.MinAt {
			r.MinAt = at
		}
		r.MaxAt = max(r.MaxAt, at)
		if m[5] != "" {
			r.Armed++
		} else if done, _ := strconv.Atoi(m[3]); done > 0 {
			size, _ := strconv.Atoi(m[4])
			r.MaxJournal = max(r.MaxJournal, done*100/max(size, 1))
		}
		return
	}
	if m := qemuDoneRE.FindStringSubmatch(l); m != nil {
		r.Cuts, _ = strconv.Atoi(m[1])
		r.Boots, _ = strconv.Atoi(m[2])
		return
	}
	if m := qemuTookRE.FindStringSubmatch(l); m != nil {
		r.Took = m[1]
	}
}
