package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/twinroot/twinroot/internal/apply"
	"github.com/twinroot/twinroot/internal/cli"
)

type applyOptions struct {
	dev  cli.Device
	out  cli.Output
	opts apply.Options
}

func newApplyCmd() *cobra.Command {
	var o applyOptions
	c := &cobra.Command{
		Use:   "apply --image PATH",
		Short: "Write a local slot image into the inactive slot and arm it for a trial boot",
		Long: `apply marks the inactive slot not bootable, writes the image into it while
hashing it, reads it back to verify it, and arms it for a trial boot. The
next boot tries it; updater boot commits it when healthy.

` + cli.ExitCodesHelp,
		Example: `  updater apply --image /media/usb/slot.img --tries 1 && reboot
  updater apply --image build/v2 --disk disk.img --running-slot a`,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runApply(c, o, c.OutOrStdout()) },
	}
	f := c.Flags()
	o.dev.AddFlags(f)
	o.out.AddFlags(f)
	f.StringVar(&o.opts.Image, "image", "", "slot image file or build output directory (required)")
	f.StringVar(&o.opts.ExpectSHA256, "sha256", "", "expected SHA-256 of the image")
	f.IntVar(&o.opts.Tries, "tries", 1, "trial boots before GRUB falls back (1 to 3)")
	c.MarkFlagRequired("image")
	return c
}

func runApply(c *cobra.Command, o applyOptions, w io.Writer) error {
	if err := o.out.Validate(); err != nil {
		return err
	}
	d, running, err := o.dev.Open()
	if err != nil {
		return err
	}
	defer d.Close()
	o.opts.Progress = cli.Progress(os.Stderr, "writing slot "+string(running.Other()))
	r, err := apply.FromFile(c.Context(), d, running, o.opts)
	if err != nil {
		return err
	}
	if o.out.JSON() {
		return cli.WriteJSON(w, r)
	}
	fmt.Fprintf(w, "slot %s: version %s written and verified (sha256 %s); armed for %d trial boot(s)\n", r.Slot, r.Version, r.SHA256, r.State.Tries)
	return nil
}
