// Command fakeupdater stands in for the updater in the minimal system's boot
// tests: `boot --health-cmd CMD [--health-timeout D]` runs CMD and exits 0 when it passes, 3 when
// it fails; `fail N` exits N; anything else prints its arguments.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

func main() {
	args := os.Args[1:]
	switch {
	case len(args) >= 3 && args[0] == "boot" && args[1] == "--health-cmd":
		f := strings.Fields(args[2])
		cmd := exec.Command(f[0], f[1:]...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Printf("fakeupdater: health gate failed: %v\n", err)
			os.Exit(3)
		}
		fmt.Println("fakeupdater: health gate passed")
	case len(args) == 2 && args[0] == "fail":
		code, _ := strconv.Atoi(args[1])
		os.Exit(code)
	default:
		fmt.Printf("fakeupdater: args=%q\n", args)
	}
}
