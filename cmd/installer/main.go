// Command installer: see the Long help of its root command.
package main

import (
	"os"

	"github.com/twinroot/twinroot/internal/cli"
)

func main() {
	root := newRootCmd()
	// As the installer ISO's init, the kernel starts it with no arguments.
	if os.Getpid() == 1 {
		root.SetArgs([]string{"live"})
	}
	cli.Main("installer", root)
}
