package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/cli"
)

type transitionOptions struct {
	dev cli.Device
	out cli.Output
}

func newCommitCmd() *cobra.Command {
	var o transitionOptions
	c := &cobra.Command{
		Use:   "commit",
		Short: "Commit the running trial slot by hand (skip the health gate)",
		Long: `commit makes the running trial slot the committed one, so GRUB boots it
from now on. It is refused when the running slot is not on trial.

` + cli.ExitCodesHelp,
		Example: `  updater commit
  updater commit --disk disk.img --running-slot b`,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runTransition(o, c.OutOrStdout(), "committed", func(s bootstate.State, running bootstate.Slot) (bootstate.State, error) {
				return s.Commit(running)
			})
		},
	}
	o.dev.AddFlags(c.Flags())
	o.out.AddFlags(c.Flags())
	return c
}

func newRollbackCmd() *cobra.Command {
	var o transitionOptions
	c := &cobra.Command{
		Use:   "rollback",
		Short: "Go back to the other slot at the next boot",
		Long: `rollback refuses a pending or running trial: the trial slot is marked
bad (it holds the update, not a previous version) and the next boot is the
committed slot. With no trial, it makes the other slot the committed one
when that slot is ok (it held the previous version). Run again, or after a
power cut, it changes nothing more: running the slot it goes back from,
the rollback is already done. Reboot to apply.

` + cli.ExitCodesHelp,
		Example: `  updater rollback && reboot`,
		Args:    cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runTransition(o, c.OutOrStdout(), "rolled back", func(s bootstate.State, running bootstate.Slot) (bootstate.State, error) {
				return s.Rollback(running)
			})
		},
	}
	o.dev.AddFlags(c.Flags())
	o.out.AddFlags(c.Flags())
	return c
}

func runTransition(o transitionOptions, w io.Writer, verb string, f func(bootstate.State, bootstate.Slot) (bootstate.State, error)) error {
	d, err := openDevice(o.out, o.dev, nil)
	if err != nil {
		return err
	}
	defer d.Close()
	st, err := d.disk.Update(func(s bootstate.State) (bootstate.State, error) { return f(s, d.running) })
	if err != nil {
		return err
	}
	if o.out.JSON() {
		return cli.WriteJSON(w, st)
	}
	next, _ := st.GrubBoot()
	fmt.Fprintf(w, "%s: committed slot %s, next boot slot %s\n", verb, st.Committed, next)
	return nil
}
