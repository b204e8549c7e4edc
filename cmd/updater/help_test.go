package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// Every command's --help says what its exit codes mean.
func TestHelpSaysExitCodes(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Runnable() && !strings.Contains(c.Long, "Exit codes:") {
			t.Errorf("%s --help does not list its exit codes", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			if sub.Name() != "help" && sub.Name() != "completion" {
				walk(sub)
			}
		}
	}
	walk(newRootCmd())
}
