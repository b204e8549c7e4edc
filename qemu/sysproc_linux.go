package qemu

import "syscall"

// sysProcAttr makes the kernel kill QEMU when the test process dies, even
// by SIGKILL, where no Cleanup or context runs. (Pdeathsig follows the
// thread that forked; Go threads outlive the goroutines they run unless a
// goroutine exits while locked to one, which nothing here does.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
