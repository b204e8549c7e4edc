package main

import (
	"context"
	"io"
	"os"
	"strings"

	"github.com/twinroot/twinroot/bench/internal/harness"
)

func main() {
	o := options{}
	cli := harness.New("release-bench", "./bench/release", usage, &o.Common)
	fs := cli.Flags
	fs.Int64Var(&o.SizeMB, "size", 200, "size of the generated root in MiB")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the generated root")
	fs.IntVar(&o.BuildRuns, "build-runs", 2, "interleaved runs of updater build and mksquashfs (the median is reported)")
	fs.IntVar(&o.Runs, "runs", 3, "interleaved runs of updater publish and aws s3 cp per server (the median is reported)")
	servers := fs.String("servers", "minio,versitygw", "S3 servers to publish to, comma-separated: minio, versitygw")
	exit, ok := cli.Parse(os.Args[1:], func() error {
		for _, s := range strings.Split(*servers, ",") {
			if s = strings.TrimSpace(s); s != "" {
				o.Servers = append(o.Servers, s)
			}
		}
		return o.validate()
	})
	if !ok {
		os.Exit(exit)
	}
	os.Exit(harness.Main(cli, func(ctx context.Context, log io.Writer) (Report, error) { return run(ctx, o, log) }, writeTable))
}

const usage = `Measures the release pipeline against its peers on this machine, on a
generated root: updater build beside mksquashfs alone (same flags, same
root), and updater publish beside aws s3 cp of the same slot.img.zst to the
same S3 server (MinIO, versitygw; started on 127.0.0.1), interleaved,
medians reported as ratios. Progress goes to stderr, the report to stdout.`
