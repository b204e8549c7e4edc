package qemu_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/twinroot/twinroot/qemu"
	"github.com/twinroot/twinroot/qemu/lab"
)

// bootSeries boots one disk again and again, one QEMU per boot: a guest
// reboot ends its QEMU (NoReboot), so each boot also gets a fresh guestfwd
// stream to the store and no connection of the boot before.
type bootSeries struct {
	t       *testing.T
	name    string // of the guests: name-bootN
	cfg     qemu.Config
	timeout time.Duration // for the guest to end before the next boot
	boots   int
	vm      *qemu.VM
}

// newBootSeries prepares boots of disk under fw whose network reaches the
// store at endpoint through lab.GuestStore.
func newBootSeries(t *testing.T, name string, fw qemu.Firmware, disk, endpoint string, timeout time.Duration) *bootSeries {
	t.Helper()
	fwd, err := lab.Forward(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fwd.Close() })
	return &bootSeries{t: t, name: name, timeout: timeout, cfg: qemu.Config{Firmware: fw,
		Drives: []qemu.Drive{{Path: disk}}, NoReboot: true, ExtraArgs: watchdogArgs,
		NetDev: "user,id=n,restrict=on," + fwd.GuestFwd(lab.GuestStore)}}
}

// next waits for the running guest to end (it rebooted or powered off)
// and starts the next boot.
func (b *bootSeries) next() *qemu.VM {
	b.t.Helper()
	if b.vm != nil {
		if err := b.vm.Wait(b.timeout); err != nil {
			b.t.Fatalf("guest reboot: %v", err)
		}
	}
	b.boots++
	cfg := b.cfg
	cfg.Name = fmt.Sprintf("%s-boot%d", b.name, b.boots)
	b.vm = qemu.StartT(b.t, cfg)
	return b.vm
}
