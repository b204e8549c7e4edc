package main

import (
	"github.com/spf13/cobra"

	"github.com/twinroot/twinroot/internal/cli"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "updater",
		Short: "twinroot device agent: A/B updates with trial boots and automatic fallback",
		Long: `updater keeps a twinroot machine on a signed A/B image.

On the device it runs at every boot (updater boot) to finish a trial boot
through the health gate, and reports and changes the boot state by hand
(status, commit, rollback, apply). Every device-side command also acts on a
disk image file: --disk FILE --running-slot a|b.

` + cli.ExitCodesHelp,
	}
	root.AddCommand(newBootCmd(), newStatusCmd(), newCommitCmd(), newRollbackCmd(), newApplyCmd(),
		newKeygenCmd(), newSignCmd(), newBuildCmd(), newPublishCmd(), newVerifyCmd(), newCheckCmd(), newDaemonCmd(),
		newContainersCmd(), newRolloutCmd(), newFleetCmd())
	return cli.Root(root)
}
