// Command installer: see the Long help of its root command.
package main

import "github.com/twinroot/twinroot/internal/cli"

func main() { cli.Main("installer", newRootCmd()) }
