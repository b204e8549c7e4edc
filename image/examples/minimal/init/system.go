package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/shlex"
	"golang.org/x/sys/unix"
)

const prefix = "twinroot-init: "

// system is what init needs from the machine; tests point the paths at a
// temporary directory and replace reboot.
type system struct {
	cmdline string // file with the kernel command line
	etc     string // directory holding version and variant
	updater string // the updater binary
	self    string // this program, as the health command names it
	data    string // where the data partition is mounted; "" = not mounted (tests)

	in  io.Reader // the console
	out io.Writer // the console

	reboot func(cmd int) error // reboot(2)
	reap   bool                // reap orphans after each command (PID 1 only)
}

func newSystem() *system {
	return &system{
		cmdline: "/proc/cmdline",
		etc:     "/etc/twinroot",
		updater: "/bin/updater",
		self:    "/init",
		data:    "/data",
		in:      os.Stdin,
		out:     os.Stdout,
		reboot:  unix.Reboot,
	}
}

func (s *system) printf(format string, a ...any) {
	fmt.Fprintf(s.out, prefix+format+"\n", a...)
}

// kernelArg returns the value of key=value on the kernel command line.
func (s *system) kernelArg(key string) (string, bool) {
	b, err := os.ReadFile(s.cmdline)
	if err != nil {
		return "", false
	}
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v, true
		}
	}
	return "", false
}

// slot is the slot GRUB booted, from the kernel command line (never guessed).
func (s *system) slot() string {
	if v, ok := s.kernelArg("twinroot.slot"); ok && v != "" {
		return v
	}
	return "none"
}

func (s *system) identity(name string) string {
	b, err := os.ReadFile(filepath.Join(s.etc, name))
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// health is `init health`: the check the updater's health gate runs.
func (s *system) health() int {
	if v := s.identity("variant"); v != "ok" {
		s.printf("health failed")
		return 1
	}
	s.printf("health ok")
	return 0
}

// start prints who is running and runs `updater boot`. It returns false for
// the panic variant, whose init gives up.
func (s *system) start() bool {
	variant := s.identity("variant")
	s.printf("slot=%s version=%s variant=%s", s.slot(), s.identity("version"), variant)
	switch variant {
	case "panic":
		s.printf("panic variant, exiting")
		return false
	case "hang":
		s.printf("hang variant, hanging")
		for {
			// Not select{}: with every goroutine asleep the runtime
			// exits, and PID 1 exiting panics the kernel.
			time.Sleep(time.Hour)
		}
	}
	if _, err := os.Stat(s.updater); err == nil {
		// The minimal system's check answers at once: a short deadline keeps
		// a failing trial from holding the boot up.
		code := s.run("boot", "--health-cmd", s.self+" health", "--health-timeout", "5s")
		s.printf("updater boot exit=%d", code)
	}
	return true
}

// serve prints ready and obeys console lines until the console ends.
func (s *system) serve() error {
	s.printf("ready")
	sc := bufio.NewScanner(s.in)
	for sc.Scan() {
		args := shlex.Argv(strings.TrimSpace(sc.Text()))
		if len(args) == 0 {
			continue
		}
		switch args[0] {
		case "reboot":
			s.shutdown(unix.LINUX_REBOOT_CMD_RESTART)
		case "poweroff":
			s.shutdown(unix.LINUX_REBOOT_CMD_POWER_OFF)
		case "run":
			code := s.run(args[1:]...)
			s.printf("run exit=%d", code)
		default:
			s.printf("unknown command")
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read console: %w", err)
	}
	return io.EOF
}

// run runs the updater with the console as its output and returns its exit
// code: 127 when it cannot start, -1 when a signal killed it.
func (s *system) run(args ...string) int {
	cmd := exec.Command(s.updater, args...)
	// The updater must not read the console: its lines are init's commands.
	cmd.Stdin = nil
	cmd.Stdout = s.out
	cmd.Stderr = s.out
	err := cmd.Run()
	if s.reap {
		reapOrphans()
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.ExitCode()
	default:
		s.printf("%s: %v", s.updater, err)
		return 127
	}
}

// shutdown syncs and reboots or powers off. It returns only when reboot(2)
// failed (or, in tests, was replaced).
func (s *system) shutdown(cmd int) int {
	unix.Sync()
	if s.data != "" {
		// A clean file system for whoever reads the disk next; busy or
		// not mounted is fine, the sync above already wrote it.
		unix.Unmount(s.data, 0)
	}
	if err := s.reboot(cmd); err != nil {
		s.printf("reboot(%#x): %v", cmd, err)
		return 1
	}
	return 0
}

// reapOrphans collects children that ended after their parent did: PID 1
// inherits them, and nobody else waits for them.
func reapOrphans() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
