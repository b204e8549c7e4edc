package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/twinroot/twinroot/bench/internal/harness"
)

func main() {
	o := options{}
	cli := harness.New("delta-bench", "./bench/delta", usage, &o.Common)
	fs := cli.Flags
	fs.Lookup("updater").Usage = "not used: this bench builds and applies releases in process"
	fs.StringVar(&o.Cache, "cache", "build/delta", "where the roots, slot images and package files are cached")
	fs.StringVar(&o.DebianCache, "debian-cache", "build/debian", "where the Debian base root is cached (built by debootstrap when absent)")
	fs.BoolVar(&o.RebuildImages, "rebuild-images", false, "build the slot images again even when cached")
	gaps := fs.String("gaps", "", "more coalescing gaps (fetch.Options.MaxGap) to apply with, in KiB, comma-separated, e.g. 16,64")
	exit, ok := cli.Parse(os.Args[1:], func() error {
		for _, g := range strings.Split(*gaps, ",") {
			if g = strings.TrimSpace(g); g == "" {
				continue
			}
			n, err := strconv.ParseInt(g, 10, 64)
			if err != nil || n < 1 {
				return fmt.Errorf("-gaps: %q is not a positive number of KiB", g)
			}
			o.Gaps = append(o.Gaps, n<<10)
		}
		return nil
	})
	if !ok {
		os.Exit(exit)
	}
	os.Exit(harness.Main(cli, func(ctx context.Context, log io.Writer) (Report, error) { return run(ctx, o, log) }, writeTable))
}

const usage = `Measures what a device fetches to take an update of a real Debian 13 root,
beside casync and beside the ideal: two updates (an openssl security update;
several updates, two packages added and a configuration change), each built
into xz slot images as updater build makes them and applied by fetch.Apply
from a file:// store with the old image as the running slot. Roots and slot
images are cached (-cache); the first run needs root, debootstrap and
Debian's mirror. Progress goes to stderr, the report to stdout.`
