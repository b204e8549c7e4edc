package main

import (
	"github.com/spf13/cobra"

	"github.com/twinroot/twinroot/internal/cli"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "installer",
		Short: "Install twinroot onto a disk, build the installer ISO, and inspect twinroot disks",
		Long: `installer partitions a disk for twinroot (BIOS boot, ESP, slots A and B,
data), writes the first version to slot A while hashing it, installs GRUB
for BIOS and UEFI and formats the data partition. iso builds the installer
ISO that does the same on the machine itself, booted from a CD or a USB stick.

` + cli.ExitCodesHelp,
	}
	root.AddCommand(newInstallCmd(), newInspectCmd(), newBuildGrubCmd(), newISOCmd(), newLiveCmd())
	return cli.Root(root)
}

func noArgs(c *cobra.Command, args []string) error {
	if err := cobra.NoArgs(c, args); err != nil {
		return cli.UsageError{Err: err}
	}
	return nil
}
