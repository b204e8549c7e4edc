package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/twinroot/twinroot/internal/health"
	"github.com/twinroot/twinroot/internal/refusal"
)

// Exit codes of every twinroot command.
const (
	ExitOK        = 0
	ExitError     = 1 // I/O or unexpected failure
	ExitUsage     = 2 // bad flags or arguments
	ExitRefused   = 3 // a check refused the operation; nothing was changed
	ExitUnhealthy = 4 // the health gate failed (the machine reboots)
)

// ExitCodesHelp is appended to every command's help.
const ExitCodesHelp = `Exit codes:
  0  success
  1  error (I/O, unexpected failure)
  2  usage error
  3  refused by a check; nothing was changed
  4  health gate failed; the trial slot was marked bad`

// UsageError marks a usage mistake.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// ExitCode maps an error to the exit code of the command.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var u UsageError
	if errors.As(err, &u) {
		return ExitUsage
	}
	// cobra reports these as plain errors.
	for _, p := range []string{"required flag(s)", "unknown command", "accepts "} {
		if strings.HasPrefix(err.Error(), p) {
			return ExitUsage
		}
	}
	if errors.Is(err, health.ErrUnhealthy) {
		return ExitUnhealthy
	}
	if refusal.Is(err) {
		return ExitRefused
	}
	return ExitError
}

// Output is the -o flag.
type Output struct {
	Format string
	// Also are formats a command writes beside text and json.
	Also []string
}

// formats names the formats: "text or json", "text, html or json".
func (o Output) formats() string {
	return strings.Join(append([]string{"text"}, o.Also...), ", ") + " or json"
}

// AddFlags registers -o.
func (o *Output) AddFlags(f *pflag.FlagSet) {
	f.StringVarP(&o.Format, "output", "o", "text", "output format: "+o.formats())
}

// Validate checks the format.
func (o Output) Validate() error {
	if o.Format != "text" && o.Format != "json" && !slices.Contains(o.Also, o.Format) {
		return UsageError{fmt.Errorf("unknown output format %q: want %s", o.Format, o.formats())}
	}
	return nil
}

// JSON reports whether JSON output was asked for.
func (o Output) JSON() bool { return o.Format == "json" }

// WriteJSON writes v indented.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Logger returns the logger of a command: records without timestamps under
// systemd (journald adds its own), plain text otherwise; debug with verbose.
func Logger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	if os.Getenv("JOURNAL_STREAM") != "" || os.Getenv("INVOCATION_ID") != "" {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		}
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Progress returns a progress callback drawing a bar on w when w is a
// terminal, and nil otherwise.
func Progress(w io.Writer, label string) func(done, total int64) {
	if !IsTerminal(w) {
		return nil
	}
	var bar *progressbar.ProgressBar
	return func(done, total int64) {
		if bar == nil {
			bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(label),
				progressbar.OptionShowBytes(true), progressbar.OptionThrottle(100_000_000), progressbar.OptionClearOnFinish())
		}
		bar.Set64(done)
		if done == total {
			bar.Finish()
		}
	}
}

// MissingExitCodes lists the runnable commands under root whose --help
// does not say what their exit codes mean (ExitCodesHelp).
func MissingExitCodes(root *cobra.Command) []string {
	var missing []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Runnable() && !strings.Contains(c.Long, ExitCodesHelp) {
			missing = append(missing, c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return missing
}
