package health

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	shlex "github.com/hugelgupf/go-shlex"
)

// ErrUnhealthy is returned when the gate does not pass within its deadline.
var ErrUnhealthy = errors.New("health gate failed")

// DefaultDeadline is a Gate's deadline unless it names one.
const DefaultDeadline = 2 * time.Minute

// Gate is the set of checks.
type Gate struct {
	Units    []string      // systemd units that must be active
	Commands []string      // shell-like command lines that must exit 0
	Probes   []Probe       // other checks, such as a bundled service's health
	Deadline time.Duration // default DefaultDeadline
	Interval time.Duration // between rounds; default 2 s
	// Systemctl is the systemctl binary; default "systemctl".
	Systemctl string
}

// Probe is a check the gate runs besides units and commands.
type Probe struct {
	Name  string // as shown in results: "container web"
	Check func(context.Context) (ok bool, detail string)
}

// Result of one check.
type Result struct {
	Check  string `json:"check"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// Run checks until every check passes or the deadline passes, and returns
// the results of the last round.
func (g Gate) Run(ctx context.Context) ([]Result, error) {
	if g.Deadline == 0 {
		g.Deadline = DefaultDeadline
	}
	if g.Interval == 0 {
		g.Interval = 2 * time.Second
	}
	if g.Systemctl == "" {
		g.Systemctl = "systemctl"
	}
	ctx, cancel := context.WithTimeout(ctx, g.Deadline)
	defer cancel()
	for {
		results, ok := g.round(ctx)
		if ok {
			return results, nil
		}
		select {
		case <-ctx.Done():
			return results, fmt.Errorf("%w within %s: %s", ErrUnhealthy, g.Deadline, failures(results))
		case <-time.After(g.Interval):
		}
	}
}

func (g Gate) round(ctx context.Context) ([]Result, bool) {
	var results []Result
	ok := true
	add := func(r Result) {
		results = append(results, r)
		ok = ok && r.OK
	}
	for _, u := range g.Units {
		out, err := exec.CommandContext(ctx, g.Systemctl, "is-active", u).Output()
		state := strings.TrimSpace(string(out))
		add(Result{Check: "unit " + u, OK: err == nil && state == "active", Detail: state})
	}
	for _, c := range g.Commands {
		args := shlex.Split(c)
		if len(args) == 0 {
			add(Result{Check: "command " + c, Detail: "empty command"})
			continue
		}
		out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
		r := Result{Check: "command " + c, OK: err == nil}
		if err != nil {
			r.Detail = strings.TrimSpace(lastLine(string(out)) + " (" + err.Error() + ")")
		}
		add(r)
	}
	for _, p := range g.Probes {
		pok, detail := p.Check(ctx)
		add(Result{Check: p.Name, OK: pok, Detail: detail})
	}
	return results, ok
}

func failures(rs []Result) string {
	var f []string
	for _, r := range rs {
		if !r.OK {
			f = append(f, r.Check+": "+r.Detail)
		}
	}
	return strings.Join(f, "; ")
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
