// Command build-minimal builds a slot image of the minimal reference system
// (package github.com/twinroot/twinroot/image/examples/minimal), or only its
// initramfs with --initramfs.
//
//	build-minimal --kernel-dir build/kernel --version 1.0.0 --out build/minimal-1.0.0.img
//
// Exit codes: 0 built, 1 failed, 2 bad usage.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/twinroot/twinroot/image/examples/minimal"
)

func main() {
	var (
		opts      minimal.Options
		variant   string
		out       string
		initramfs bool
	)
	fs := flag.NewFlagSet("build-minimal", flag.ContinueOnError)
	fs.StringVar(&opts.KernelDir, "kernel-dir", "build/kernel", "output of fetch-kernel.sh (`make kernel`)")
	fs.StringVar(&opts.Updater, "updater", "", "static updater binary to put at /bin/updater (none if empty)")
	fs.StringVar(&opts.Version, "version", "", "version string of the image (required)")
	fs.StringVar(&variant, "variant", string(minimal.OK), "ok, panic or unhealthy")
	fs.StringVar(&opts.Compression, "compression", "xz", "squashfs compressor: xz or gzip")
	fs.StringVar(&out, "out", "", "file to write (required)")
	fs.BoolVar(&initramfs, "initramfs", false, "write only the initramfs (gzip newc cpio)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if out == "" || opts.Version == "" || fs.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "build-minimal: --version and --out are required, and no arguments")
		os.Exit(2)
	}
	opts.Variant = minimal.Variant(variant)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	build := minimal.Build
	if initramfs {
		build = minimal.BuildInitramfs
	}
	if err := build(ctx, opts, out); err != nil {
		fmt.Fprintln(os.Stderr, "build-minimal:", err)
		os.Exit(1)
	}
}
