package harness

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Exit codes of a bench program.
const (
	ExitOK    = 0
	ExitFail  = 1 // a step failed
	ExitUsage = 2
)

// Common are the options every bench program takes.
type Common struct {
	Updater string // the updater binary to measure; empty: go build ./cmd/updater
	Work    string // the work directory, kept; empty: a temporary one, removed
	Output  string // text or json
}

// CLI is a bench program's command line.
type CLI struct {
	// Flags holds -updater, -work and -o; the program adds its own.
	Flags          *flag.FlagSet
	Stdout, Stderr io.Writer
	common         *Common
}

// New returns the command line of the bench program in directory dir of
// the repository (./bench/apply), whose flags fill c. usage says what it
// measures.
func New(name, dir, usage string, c *Common) *CLI {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run %s [flags]\n\n%s\n\nflags:\n", dir, usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.Updater, "updater", "", "updater binary to measure (default: go build ./cmd/updater)")
	fs.StringVar(&c.Work, "work", "", "work directory, kept afterwards (default: a temporary one, removed)")
	fs.StringVar(&c.Output, "o", "text", "output format: text or json")
	return &CLI{Flags: fs, Stdout: os.Stdout, Stderr: os.Stderr, common: c}
}

// Parse parses args and checks them, the program's own with check (which
// may be nil). It returns ok, or the exit code to stop with: ExitOK after
// -h, ExitUsage after a usage error, which it has printed.
func (c *CLI) Parse(args []string, check func() error) (exit int, ok bool) {
	c.Flags.SetOutput(c.Stderr)
	if err := c.Flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK, false
		}
		return ExitUsage, false
	}
	err := func() error {
		if c.Flags.NArg() > 0 {
			return fmt.Errorf("unexpected arguments %q", c.Flags.Args())
		}
		if o := c.common.Output; o != "text" && o != "json" {
			return fmt.Errorf("-o %q: want text or json", o)
		}
		if check != nil {
			return check()
		}
		return nil
	}()
	if err != nil {
		fmt.Fprintln(c.Stderr, "bench:", err)
		return ExitUsage, false
	}
	return ExitOK, true
}

// Main runs the bench with a context that SIGINT and SIGTERM cancel and
// progress going to c.Stderr, then prints its report to c.Stdout: with
// table, or as JSON with -o json. It returns the exit code.
func Main[R any](c *CLI, run func(ctx context.Context, log io.Writer) (R, error), table func(io.Writer, R) error) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	rep, err := run(ctx, c.Stderr)
	if err != nil {
		fmt.Fprintln(c.Stderr, "bench failed:", err)
		return ExitFail
	}
	fmt.Fprintf(c.Stderr, "bench: done in %s\n", time.Since(start).Round(time.Second))
	if c.common.Output == "json" {
		enc := json.NewEncoder(c.Stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		err = table(c.Stdout, rep)
	}
	if err != nil {
		fmt.Fprintln(c.Stderr, "bench:", err)
		return ExitFail
	}
	return ExitOK
}
