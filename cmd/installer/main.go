// Command installer puts twinroot on a disk: from a build host onto a disk
// image file or a drive, and (later) from the installer ISO.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/twinroot/twinroot/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "installer:", err)
	}
	os.Exit(cli.ExitCode(err))
}
