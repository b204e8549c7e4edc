package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/twinroot/twinroot/internal/cli"
	"github.com/twinroot/twinroot/internal/grub"
)

func newBuildGrubCmd() *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "build-grub --out DIR",
		Short: "Build the GRUB images install writes (boot.img, core.img, BOOTX64.EFI) with grub-mkimage",
		Long: `build-grub runs grub-mkimage once at build time, so that install never
needs grub-install on the target. The output is reproducible.

` + cli.ExitCodesHelp,
		Example: `  installer build-grub --out build/grub`,
		Args:    cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := grub.BuildImages(c.Context(), out); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "GRUB images in %s\n", out)
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "build/grub", "output directory")
	return c
}
