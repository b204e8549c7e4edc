// Package watchdog arms the hardware watchdog for a trial boot and hands it
// from one owner to the next until the trial is committed, so that a trial
// system that hangs is reset by the hardware and GRUB, finding the trial's
// boots used up, boots the committed slot.
//
// The Linux watchdog API (the kernel's Documentation/watchdog) allows one
// open of /dev/watchdog at a time. Opening it starts the timer; a keepalive
// restarts it; closing it after writing the magic character 'V' stops it;
// closing it without stops nothing, so the timer goes on running, and
// resets the machine unless the next owner opens the device and feeds it in
// time. That is the hand-over:
//
//  1. early in a trial boot (GRUB adds twinroot.trial=1 to the kernel
//     command line) the initramfs or init arms the watchdog with Arm: open,
//     set the timeout, close without 'V';
//  2. `updater boot` takes it with Take and feeds it while the health gate
//     runs; when the gate passes and the slot is committed it disarms it
//     (Disarm); when the gate fails it lets go of it armed (Release), so
//     that the reboot into the committed slot happens even if the reboot
//     itself hangs;
//  3. on a system whose PID 1 owns the watchdog (systemd with
//     RuntimeWatchdogSec), Take finds it held (ErrHeld) and leaves it to
//     PID 1, which feeds it for as long as it runs.
//
// A trial whose init never gets to step 2 (it hangs, or the root is never
// mounted) is reset when the timeout runs out.
package watchdog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Device is the first watchdog.
const Device = "/dev/watchdog"

// DefaultTimeout is the timeout Arm sets unless told otherwise: long enough
// for a slow boot to reach `updater boot` (tens of seconds under emulation),
// short enough that a hung trial is back on its committed slot within a
// minute.
const DefaultTimeout = 30 * time.Second

var (
	// ErrNone: the machine has no watchdog (no driver bound, no device).
	ErrNone = errors.New("no watchdog")
	// ErrHeld: another process (PID 1) holds the watchdog and feeds it.
	ErrHeld = errors.New("watchdog held by another process")
)

// Arm starts the watchdog of dev with the given timeout and lets go of it
// running: the machine resets after timeout unless someone takes it.
func Arm(dev string, timeout time.Duration) error {
	w, err := open(dev)
	if err != nil {
		return err
	}
	// A driver that refuses the timeout keeps its own: armed all the same.
	unix.IoctlSetPointerInt(int(w.Fd()), unix.WDIOC_SETTIMEOUT, int(timeout/time.Second))
	keepAlive(w)
	if err := w.Close(); err != nil {
		return fmt.Errorf("watchdog %s: close: %w", dev, err)
	}
	return nil
}

// Dog is a watchdog taken by this process.
type Dog struct {
	dev  string
	w    *os.File
	stop chan struct{}
	done sync.WaitGroup
	once sync.Once
}

// Take opens the watchdog of dev (which starts it, if it was not running)
// and feeds it at a quarter of its timeout until until has passed, then
// stops feeding: a process that hangs past until is reset like any other
// hang. Disarm or Release end the feeding.
func Take(dev string, until time.Duration) (*Dog, error) {
	w, err := open(dev)
	if err != nil {
		return nil, err
	}
	d := &Dog{dev: dev, w: w, stop: make(chan struct{})}
	keepAlive(w)
	interval := 5 * time.Second
	if t, err := d.Timeout(); err == nil && t > 0 {
		interval = max(t/4, time.Second)
	}
	d.done.Add(1)
	go func() {
		defer d.done.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		end := time.After(until)
		for {
			select {
			case <-d.stop:
				return
			case <-end:
				return
			case <-t.C:
				keepAlive(w)
			}
		}
	}()
	return d, nil
}

// Timeout is the watchdog's current timeout.
func (d *Dog) Timeout() (time.Duration, error) {
	s, err := unix.IoctlGetInt(int(d.w.Fd()), unix.WDIOC_GETTIMEOUT)
	if err != nil {
		return 0, fmt.Errorf("watchdog %s: timeout: %w", d.dev, err)
	}
	return time.Duration(s) * time.Second, nil
}

func (d *Dog) halt() {
	d.once.Do(func() { close(d.stop) })
	d.done.Wait()
}

// Disarm stops the watchdog: the trial is over.
func (d *Dog) Disarm() error {
	d.halt()
	_, err := d.w.Write([]byte("V"))
	if cerr := d.w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("watchdog %s: disarm: %w", d.dev, err)
	}
	return nil
}

// Release stops feeding and lets go of the watchdog still running: the
// machine resets within its timeout unless someone takes it.
func (d *Dog) Release() error {
	d.halt()
	keepAlive(d.w) // a full timeout for the reboot
	if err := d.w.Close(); err != nil {
		return fmt.Errorf("watchdog %s: close: %w", d.dev, err)
	}
	return nil
}

// keepAlive restarts the timer. Any write does (the API's keepalive); the
// ioctl is not required of every driver.
func keepAlive(w *os.File) { w.Write([]byte{'.'}) }

// open opens dev, which starts its watchdog. The few calls are made here
// rather than through u-root's pkg/watchdog, whose SetTimeout hands the
// ioctl a time.Duration (nanoseconds, 8 bytes) where the kernel reads an
// int of seconds.
func open(dev string) (*os.File, error) {
	w, err := os.OpenFile(dev, os.O_WRONLY, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, unix.ENODEV), errors.Is(err, unix.ENXIO):
		return nil, fmt.Errorf("%w: %s", ErrNone, dev)
	case errors.Is(err, unix.EBUSY):
		return nil, fmt.Errorf("%w: %s", ErrHeld, dev)
	case err != nil:
		return nil, fmt.Errorf("watchdog %s: %w", dev, err)
	}
	return w, nil
}
