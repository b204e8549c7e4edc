package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/twinroot/twinroot/image"
	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/cli"
	"github.com/twinroot/twinroot/internal/partition"
)

type inspectOptions struct {
	disk string
	out  cli.Output
}

func newInspectCmd() *cobra.Command {
	var o inspectOptions
	c := &cobra.Command{
		Use:   "inspect --disk DEVICE|FILE",
		Short: "Show a twinroot disk's partitions, boot state and slot versions",
		Long: `inspect reads a twinroot disk without changing it: its partitions, its boot
state, and for each slot the image's version, serial, compression, size
and the keys it trusts.

` + cli.ExitCodesHelp,
		Example: `  installer inspect --disk disk.img
  installer inspect --disk /dev/sdb -o json`,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runInspect(o, c.OutOrStdout()) },
	}
	c.Flags().StringVar(&o.disk, "disk", "", "disk image file or device (required)")
	o.out.AddFlags(c.Flags())
	c.MarkFlagRequired("disk")
	return c
}

type inspection struct {
	Disk   string                 `json:"disk"`
	Layout partition.Layout       `json:"layout"`
	State  bootstate.State        `json:"boot_state"`
	Slots  map[string]*image.Slot `json:"slots"`
}

func runInspect(o inspectOptions, w io.Writer) error {
	if err := o.out.Validate(); err != nil {
		return err
	}
	f, err := os.Open(o.disk)
	if err != nil {
		return err
	}
	defer f.Close()
	l, err := partition.Read(f)
	if err != nil {
		return err
	}
	d, err := bootstate.OpenDisk(o.disk)
	if err != nil {
		return err
	}
	defer d.Close()
	st, err := d.Load()
	if err != nil {
		return err
	}
	in := inspection{Disk: o.disk, Layout: l, State: st, Slots: map[string]*image.Slot{}}
	for _, s := range []partition.Slot{partition.A, partition.B} {
		p := l.Slot(s)
		if img, err := image.ReadSlot(f, p.Start, p.Size); err == nil {
			in.Slots[string(s)] = &img
		}
	}
	if o.out.JSON() {
		return cli.WriteJSON(w, in)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "disk\t%s\t%d MiB\n", o.disk, l.DiskSize>>20)
	for _, p := range l.Parts() {
		fmt.Fprintf(tw, "%d\t%s\t%d MiB at %d MiB\n", p.Number, p.Label, p.Size>>20, p.Start>>20)
	}
	fmt.Fprintf(tw, "committed\tslot %s\n", st.Committed)
	if st.Trial != "" {
		fmt.Fprintf(tw, "trial\tslot %s, %d boot(s) left\n", st.Trial, st.Tries)
	}
	for _, s := range []string{"a", "b"} {
		desc := "no image"
		if i := in.Slots[s]; i != nil {
			trusts := "trusts no key"
			if len(i.Keys) > 0 {
				trusts = "trusts " + strings.Join(i.Keys, " ")
			}
			desc = fmt.Sprintf("version %q (serial %d), %s squashfs, %d bytes, %s", i.Version, i.Serial, i.Compression, i.Size, trusts)
		}
		fmt.Fprintf(tw, "slot %s\t%s\t%s\n", s, st.Of(partition.Slot(s)), desc)
	}
	return tw.Flush()
}
