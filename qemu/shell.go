package qemu

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Shell is a root shell on a guest's serial console, as a full system
// (the Debian reference system) offers it after a login.
type Shell struct {
	VM      *VM
	Timeout time.Duration // for each command
}

// Login waits for the login prompt of host, logs in as root (no password)
// and quiets kernel messages, which would land in the middle of command
// output.
func Login(vm *VM, host string, timeout time.Duration) (*Shell, error) {
	if _, err := vm.Expect(regexp.QuoteMeta(host)+` login:`, timeout); err != nil {
		return nil, err
	}
	if err := vm.Send("root"); err != nil {
		return nil, err
	}
	if _, err := vm.Expect(`root@`+regexp.QuoteMeta(host), timeout); err != nil {
		return nil, err
	}
	s := &Shell{VM: vm, Timeout: timeout}
	if _, err := s.Run("dmesg -n 1"); err != nil {
		return nil, err
	}
	return s, nil
}

var endMark = regexp.MustCompile(`@@end (\d+)@@`)

// Exec runs a shell command line and returns what it printed and its exit
// code. The marks around the output are printed by printf from pieces,
// so the echo of the typed line never matches them.
func (s *Shell) Exec(cmd string) (string, int, error) {
	if err := s.VM.Send(fmt.Sprintf("printf '@@%%s@@\\n' begin; %s; printf '@@end %%d@@\\n' $?", cmd)); err != nil {
		return "", -1, err
	}
	if _, err := s.VM.Expect(`@@end \d+@@`, s.Timeout); err != nil {
		return "", -1, err
	}
	con := strings.ReplaceAll(s.VM.Console(), "\r", "")
	end := strings.LastIndex(con, "@@end ")
	begin := strings.LastIndex(con[:end], "@@begin@@\n")
	if begin < 0 {
		return "", -1, fmt.Errorf("qemu %s: no output marks around %q", s.VM.Name(), cmd)
	}
	rc, _ := strconv.Atoi(endMark.FindStringSubmatch(con[end:])[1])
	return con[begin+len("@@begin@@\n") : end], rc, nil
}

// Run is Exec that fails on a non-zero exit code.
func (s *Shell) Run(cmd string) (string, error) {
	out, rc, err := s.Exec(cmd)
	if err == nil && rc != 0 {
		err = fmt.Errorf("qemu %s: %s: exit %d: %s", s.VM.Name(), cmd, rc, strings.TrimSpace(out))
	}
	return out, err
}

// JSON is the document in out from its first line starting with open to
// its last line starting with close: a command's -o json output, without
// anything printed around it.
func JSON(out, open, close string) string {
	i := strings.Index("\n"+out, "\n"+open)
	j := strings.LastIndex("\n"+out, "\n"+close)
	if i < 0 || j < i {
		return out
	}
	return out[i : j+1]
}
