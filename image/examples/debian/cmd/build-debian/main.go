// Command build-debian writes the root filesystem of the Debian reference
// system (package github.com/twinroot/twinroot/image/examples/debian): the
// cached base root (debootstrap, built when absent) with the rootfs tree and
// the updater over it. updater build --rootfs DIR turns it into a slot image.
//
//	build-debian --cache build/debian --updater build/bin/updater --out build/debian/root
//
// Exit codes: 0 built, 1 failed, 2 bad usage.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/twinroot/twinroot/image/examples/debian"
)

func main() {
	var (
		opts debian.Options
		out  string
	)
	fs := flag.NewFlagSet("build-debian", flag.ContinueOnError)
	fs.StringVar(&opts.Cache, "cache", "build/debian", "directory of cached base roots")
	fs.StringVar(&opts.Updater, "updater", "", "static updater binary to put at "+debian.Updater+" (required)")
	fs.StringVar(&out, "out", "", "root directory to write (required; an earlier one is replaced)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if out == "" || opts.Updater == "" || fs.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "build-debian: --updater and --out are required, and no arguments")
		os.Exit(2)
	}
	opts.Log = os.Stdout

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	if err := debian.Build(ctx, opts, out); err != nil {
		fmt.Fprintln(os.Stderr, "build-debian:", err)
		os.Exit(1)
	}
	fmt.Printf("build-debian: %s in %v\n", out, time.Since(start).Round(time.Millisecond))
}
