package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
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
	o := options{}
	fs := flag.NewFlagSet("release-bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./bench/release [flags]\n\n%s\n\nflags:\n", usage)
		fs.PrintDefaults()
	}
	fs.Int64Var(&o.SizeMB, "size", 200, "size of the generated root in MiB")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the generated root")
	fs.IntVar(&o.BuildRuns, "build-runs", 2, "interleaved runs of updater build and mksquashfs (the median is reported)")
	fs.IntVar(&o.Runs, "runs", 3, "interleaved runs of updater publish and aws s3 cp per server (the median is reported)")
	servers := fs.String("servers", "minio,versitygw", "S3 servers to publish to, comma-separated: minio, versitygw")
	fs.StringVar(&o.Updater, "updater", "", "updater binary to measure (default: go build ./cmd/updater)")
	fs.StringVar(&o.Work, "work", "", "work directory, kept afterwards (default: a temporary one, removed)")
	fs.StringVar(&o.Output, "o", "text", "output format: text or json")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(exitOK)
		}
		os.Exit(exitUsage)
	}
	for _, s := range strings.Split(*servers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			o.Servers = append(o.Servers, s)
		}
	}
	if err := o.validate(); err != nil || fs.NArg() > 0 {
		if err == nil {
			err = fmt.Errorf("unexpected arguments %q", fs.Args())
		}
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

const usage = `Measures the release pipeline against its peers on this machine, on a
generated root: updater build beside mksquashfs alone (same flags, same
root), and updater publish beside aws s3 cp of the same slot.img.zst to the
same S3 server (MinIO, versitygw; started on 127.0.0.1), interleaved,
medians reported as ratios. Progress goes to stderr, the report to stdout.`
