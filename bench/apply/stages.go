package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/twinroot/twinroot/internal/source"
)

// stageArg makes the bench binary run one stage alone: `apply-bench
// -stage NAME ARGS...`. The Go stages use the libraries the updater uses.
const stageArg = "-stage"

const (
	stageGet    = "get"    // URL KEY: GET the object, discard the body
	stageUnzstd = "unzstd" // FILE: decompress, discard the output
	stageSHA256 = "sha256" // FILE: print the SHA-256
	stageRun    = "run"    // FILE CMD ARGS...: run CMD, write its wall time, CPU time and peak RSS to FILE
)

func runStage(ctx context.Context, name string, args []string) error {
	switch {
	case name == stageGet && len(args) == 2:
		// Credentials and endpoint come from the environment (AWS_*).
		src, err := source.Open(ctx, args[0], source.Options{})
		if err != nil {
			return err
		}
		body, _, err := src.Get(ctx, args[1], "")
		if err != nil {
			return fmt.Errorf("get %s: %w", args[1], err)
		}
		defer body.Close()
		n, err := io.Copy(io.Discard, body)
		if err != nil {
			return fmt.Errorf("get %s: %w", args[1], err)
		}
		fmt.Println(n)
		return nil
	case name == stageUnzstd && len(args) == 1:
		f, err := os.Open(args[0])
		if err != nil {
			return err
		}
		defer f.Close()
		// One goroutine, as the updater decodes each frame in its stream.
		dec, err := zstd.NewReader(bufio.NewReaderSize(f, 1<<20), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return err
		}
		defer dec.Close()
		n, err := io.Copy(io.Discard, dec)
		if err != nil {
			return fmt.Errorf("decompress %s: %w", args[0], err)
		}
		fmt.Println(n)
		return nil
	case name == stageRun && len(args) >= 2:
		return runMeasured(ctx, args[0], args[1], args[2:])
	case name == stageSHA256 && len(args) == 1:
		f, err := os.Open(args[0])
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return fmt.Errorf("hash %s: %w", args[0], err)
		}
		fmt.Println(hex.EncodeToString(h.Sum(nil)))
		return nil
	}
	return fmt.Errorf("unknown stage %q with %d arguments", name, len(args))
}

// runMeasured runs a command on this process's standard streams and writes
// its wall time, CPU time (user + system, ns) and peak RSS (bytes) to file.
// The bench starts updater apply through it: Linux keeps in a child's
// ru_maxrss the high-water RSS of the process it was started from (exec
// records the old memory's mark, and Go starts a child on the parent's own
// memory), so a child of the bench itself reported the bench's 30-odd MiB
// whenever its own peak was lower. This process is small when it starts
// the child.
func runMeasured(ctx context.Context, file, name string, args []string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return fmt.Errorf("%s: no rusage", name)
	}
	cpu := ru.Utime.Nano() + ru.Stime.Nano()
	return os.WriteFile(file, fmt.Appendf(nil, "%d %d %d\n", wall.Nanoseconds(), cpu, ru.Maxrss<<10), 0o644)
}

// readMeasured reads what runMeasured wrote.
func readMeasured(file string) (wall, cpu time.Duration, maxRSS int64, err error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, 0, 0, err
	}
	var w, c int64
	if _, err := fmt.Sscan(string(b), &w, &c, &maxRSS); err != nil {
		return 0, 0, 0, fmt.Errorf("%s: %w", file, err)
	}
	return time.Duration(w), time.Duration(c), maxRSS, nil
}
