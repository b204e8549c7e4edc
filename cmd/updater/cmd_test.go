package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/cli"
	"github.com/twinroot/twinroot/internal/testdisk"
)

// run runs the updater command line and returns its output and exit code.
func run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	c := newRootCmd()
	var out bytes.Buffer
	c.SetOut(&out)
	c.SetErr(&out)
	c.SetArgs(args)
	err := c.Execute()
	if err != nil {
		out.WriteString(err.Error())
	}
	return out.String(), cli.ExitCode(err)
}

func TestStatusCommitRollback(t *testing.T) {
	disk := testdisk.New(t, bootstate.State{Committed: "a", Trial: "b", Tries: 0, A: "ok", B: "ok"}.Env())
	out, code := run(t, "status", "-o", "json", "--disk", disk, "--running-slot", "b")
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, out)
	}
	var s status
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("status JSON: %v\n%s", err, out)
	}
	if s.Running != "b" || s.Committed != "a" || s.Trial != "b" || s.Phase != bootstate.TrialRunning || s.Slots["b"].State != bootstate.OK {
		t.Errorf("status = %+v", s)
	}
	// Committing from slot a is refused with exit 3 and changes nothing.
	if out, code := run(t, "commit", "--disk", disk, "--running-slot", "a"); code != cli.ExitRefused || !strings.Contains(out, "already committed") {
		t.Errorf("commit from a: exit %d: %s", code, out)
	}
	if out, code := run(t, "commit", "--disk", disk, "--running-slot", "b"); code != 0 || !strings.Contains(out, "committed slot b") {
		t.Errorf("commit from b: exit %d: %s", code, out)
	}
	if out, code := run(t, "rollback", "--disk", disk, "--running-slot", "b"); code != 0 || !strings.Contains(out, "next boot slot a") {
		t.Errorf("rollback: exit %d: %s", code, out)
	}
	out, _ = run(t, "status", "--disk", disk, "--running-slot", "b")
	if !strings.Contains(out, "committed  slot a") {
		t.Errorf("status after rollback:\n%s", out)
	}
}

func TestUsageErrors(t *testing.T) {
	disk := testdisk.New(t, bootstate.Initial().Env())
	for _, args := range [][]string{
		{"status", "--bogus"},
		{"status", "-o", "yaml", "--disk", disk, "--running-slot", "a"},
		{"status", "--disk", disk, "--running-slot", "c"},
		{"status", "extra-arg"},
	} {
		if out, code := run(t, args...); code != cli.ExitUsage {
			t.Errorf("%v: exit %d, want %d: %s", args, code, cli.ExitUsage, out)
		}
	}
}

func TestBootOfflineUnhealthy(t *testing.T) {
	disk := testdisk.New(t, bootstate.State{Committed: "a", Trial: "b", A: "ok", B: "ok"}.Env())
	out, code := run(t, "boot", "--disk", disk, "--running-slot", "b", "--health-cmd", "false", "--health-timeout", "100ms")
	if code != cli.ExitUnhealthy || !strings.Contains(out, "marked-bad") {
		t.Fatalf("boot: exit %d: %s", code, out)
	}
	out, _ = run(t, "status", "-o", "json", "--disk", disk, "--running-slot", "a")
	if !strings.Contains(out, `"state": "bad"`) {
		t.Errorf("slot b not bad after a failed gate:\n%s", out)
	}
}
