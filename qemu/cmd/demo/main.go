package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/twinroot/twinroot/qemu"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // a step failed or an expected console line did not come
	exitUsage = 2
)

func main() {
	var o options
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.StringVar(&o.KernelDir, "kernel-dir", "", "unpacked Debian kernel (make kernel) (required)")
	fs.StringVar(&o.GrubDir, "grub-dir", "", "boot.img, core.img and BOOTX64.EFI (make grub) (required)")
	fs.StringVar(&o.Updater, "updater", "", "static updater binary for the guest (default: build one)")
	fs.StringVar(&o.Work, "work", "", "directory for images, the disk and console logs (required)")
	fs.StringVar(&o.ISO, "iso", "", "installer ISO to install v1.0.0 from (make iso; default: build one)")
	fs.StringVar(&o.Key, "key", "", "release key pair the ISO's release was signed with, e.g. build/keys/release.key (required with --iso)")
	firmware := fs.String("firmware", string(qemu.BIOS), "firmware of the guest: bios or uefi")
	fs.DurationVar(&o.StepTimeout, "step-timeout", 3*time.Minute, "longest wait for one expected console line")
	fs.BoolVar(&o.Verbose, "verbose", false, "stream the guest console to stderr")
	fs.StringVar(&o.System, "system", "minimal", "reference system of the story: debian (bundled services) or minimal")
	fs.StringVar(&o.DebianCache, "debian-cache", "", "where the Debian base root is cached, e.g. build/debian (required with --system debian)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(exitOK)
		}
		os.Exit(exitUsage)
	}
	o.Firmware = qemu.Firmware(*firmware)
	if err := o.validate(); err != nil || fs.NArg() > 0 {
		if err == nil {
			err = fmt.Errorf("unexpected arguments %q", fs.Args())
		}
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(exitUsage)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o, os.Stdout)
	interrupted := ctx.Err() != nil
	stop()
	if err != nil {
		if interrupted {
			err = fmt.Errorf("interrupted: %w", err)
		}
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(exitFail)
	}
}
