package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twinroot/twinroot/bench/internal/harness"
)

func main() {
	// The bench runs each Go stage in a child process of its own binary,
	// so that its CPU seconds and memory are its own.
	if len(os.Args) > 2 && os.Args[1] == stageArg {
		if err := runStage(context.Background(), os.Args[2], os.Args[3:]); err != nil {
			fmt.Fprintln(os.Stderr, "stage:", err)
			os.Exit(harness.ExitFail)
		}
		return
	}

	o := options{}
	cli := harness.New("apply-bench", "./bench/apply", usage, &o.Common)
	fs := cli.Flags
	fs.Int64Var(&o.SizeMB, "size", 512, "size of the image the shell pipeline, rauc install and the first apply after install are measured on, in MiB of random data")
	sizes := fs.String("sizes", "512,2048", "image sizes in MiB whose apply/limit and peak RSS are measured, comma-separated")
	fs.IntVar(&o.Runs, "runs", 3, "interleaved runs of apply and each stage (the median is reported)")
	fs.DurationVar(&o.Quiet, "quiet", time.Minute, "longest wait before each measure for a quiet machine (other processes under 15% of it); 0 does not wait")
	exit, ok := cli.Parse(os.Args[1:], func() error {
		for _, s := range strings.Split(*sizes, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return fmt.Errorf("-sizes: %q is not a number of MiB", s)
			}
			o.SizesMB = append(o.SizesMB, n)
		}
		return o.validate()
	})
	if !ok {
		os.Exit(exit)
	}
	os.Exit(harness.Main(cli, func(ctx context.Context, log io.Writer) (Report, error) { return run(ctx, o, log) }, writeTable))
}

const usage = `Measures updater apply on this machine, per image size, against each of
its stages alone (GET, zstd decompression, SHA-256, dd oflag=direct) and the
limit they set, with its peak RSS; against the shell pipeline aws s3 cp |
zstd -d | tee >(sha256sum) | dd and rauc install of a plain bundle of the
same image; the first apply after install with and without slot A's index;
and the bytes on the wire of a no-change check. Loop devices (root needed),
one MinIO on 127.0.0.1, one rauc service on a private D-Bus, medians of
interleaved runs. Progress goes to stderr, the report to stdout.`
