package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// Env is where a bench run works and the updater it measures.
type Env struct {
	Work     string // the work directory
	Updater  string // the updater binary
	Key, Pub string // a release key pair made by updater keygen
}

// Prepare makes the work directory (c.Work, or a temporary one named after
// pattern as os.MkdirTemp names it, which remove removes), builds the
// updater unless c.Updater names one, and makes a release key with it.
// logf reports progress.
func Prepare(ctx context.Context, c Common, pattern string, logf func(format string, args ...any)) (env Env, remove func(), err error) {
	remove = func() {}
	env = Env{Work: c.Work, Updater: c.Updater}
	if env.Work == "" {
		if env.Work, err = os.MkdirTemp("", pattern); err != nil {
			return env, remove, err
		}
		remove = func() { os.RemoveAll(env.Work) }
	} else if err := os.MkdirAll(env.Work, 0o755); err != nil {
		return env, remove, err
	}
	defer func() {
		if err != nil {
			remove()
		}
	}()
	if env.Updater == "" {
		env.Updater = filepath.Join(env.Work, "updater")
		logf("building the updater into %s", env.Updater)
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", env.Updater, "github.com/twinroot/twinroot/cmd/updater")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return env, remove, fmt.Errorf("go build ./cmd/updater (run from the repository, or give -updater): %v\n%s", err, out)
		}
	}
	keys := filepath.Join(env.Work, "keys")
	if err := os.RemoveAll(keys); err != nil {
		return env, remove, err
	}
	if err := os.MkdirAll(keys, 0o700); err != nil {
		return env, remove, err
	}
	name := filepath.Join(keys, "release")
	env.Key, env.Pub = name+".key", name+".pub"
	_, err = Command(ctx, nil, env.Updater, "keygen", "--out", name)
	return env, remove, err
}

// NeedTools returns an error naming the first of tools not on PATH.
func NeedTools(tools ...string) error {
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: run make deps", tool)
		}
	}
	return nil
}

// Command runs a command with env added to the environment and returns its
// standard output; the error carries its standard error.
func Command(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		what := filepath.Base(name)
		if len(args) > 0 {
			what += " " + args[0]
		}
		return stdout.Bytes(), fmt.Errorf("%s: %w", what, err)
	}
	return stdout.Bytes(), nil
}

// Median returns the median of xs, 0 for none.
func Median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
