package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Main runs a root command with a context cancelled by SIGINT or SIGTERM,
// prints its error as one line, and exits with the code ExitCode gives.
func Main(name string, root *cobra.Command) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := root.ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	}
	os.Exit(ExitCode(err))
}

// Root sets up a root command the twinroot way: errors printed once by
// Main, no usage dump on a failure, flag mistakes as usage errors.
func Root(root *cobra.Command) *cobra.Command {
	root.SilenceUsage, root.SilenceErrors = true, true
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return UsageError{Err: err} })
	return root
}

// NoArgs is cobra.NoArgs reporting a usage error.
func NoArgs(c *cobra.Command, args []string) error {
	if err := cobra.NoArgs(c, args); err != nil {
		return UsageError{Err: err}
	}
	return nil
}
