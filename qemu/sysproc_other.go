//go:build !linux

package qemu

import "syscall"

// sysProcAttr: only Linux can tie QEMU's life to the test process; elsewhere
// Close and the context are the only guards.
func sysProcAttr() *syscall.SysProcAttr { return nil }
