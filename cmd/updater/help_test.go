package main

import (
	"testing"

	"github.com/twinroot/twinroot/internal/cli"
)

// Every command's --help says what its exit codes mean.
func TestHelpSaysExitCodes(t *testing.T) {
	if missing := cli.MissingExitCodes(newRootCmd()); len(missing) > 0 {
		t.Errorf("--help lists no exit codes: %v", missing)
	}
}
