package main

import (
	"context"
	"io"
	"os"

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
	exit, ok := cli.Parse(os.Args[1:], nil)
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
