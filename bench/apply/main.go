package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // a step failed
	exitUsage = 2
)

func main() {
	// The bench runs each Go stage in a child process of its own binary,
	// so that its CPU seconds and memory are its own.
	if len(os.Args) > 2 && os.Args[1] == stageArg {
		if err := runStage(context.Background(), os.Args[2], os.Args[3:]); err != nil {
			fmt.Fprintln(os.Stderr, "stage:", err)
			os.Exit(exitFail)
		}
		return
	}

	o := options{}
	fs := flag.NewFlagSet("apply-bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./bench/apply [flags]\n\n%s\n\nflags:\n", usage)
		fs.PrintDefaults()
	}
	fs.Int64Var(&o.SizeMB, "size", 512, "size of the image applied in the timed runs, in MiB of random data")
	sizes := fs.String("sizes", "512,2048", "image sizes in MiB whose peak RSS is measured, comma-separated")
	fs.IntVar(&o.Runs, "runs", 3, "interleaved runs of apply and each stage (the median is reported)")
	fs.StringVar(&o.Updater, "updater", "", "updater binary to measure (default: go build ./cmd/updater)")
	fs.StringVar(&o.Work, "work", "", "work directory, kept afterwards (default: a temporary one, removed)")
	fs.StringVar(&o.Output, "o", "text", "output format: text or json")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(exitOK)
		}
		os.Exit(exitUsage)
	}
	err := func() error {
		for _, s := range strings.Split(*sizes, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return fmt.Errorf("-sizes: %q is not a number of MiB", s)
			}
			o.RSSSizesMB = append(o.RSSSizesMB, n)
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("unexpected arguments %q", fs.Args())
		}
		return o.validate()
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(exitUsage)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, o, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench failed:", err)
		stop()
		os.Exit(exitFail)
	}
	if o.Output == "json" {
		err = writeJSON(os.Stdout, rep)
	} else {
		err = writeTable(os.Stdout, rep)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		stop()
		os.Exit(exitFail)
	}
}

const usage = `Measures updater apply on this machine against each of its stages alone
(GET, zstd decompression, SHA-256, dd oflag=direct), against the shell
pipeline aws s3 cp | zstd -d | tee >(sha256sum) | dd, its peak RSS per image
size, and the bytes on the wire of a no-change check; one loop device (root
needed for losetup), one MinIO on 127.0.0.1, medians of interleaved runs.
Progress goes to stderr, the report to stdout.`
