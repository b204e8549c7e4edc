package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/twinroot/twinroot/qemu"
	"github.com/twinroot/twinroot/qemu/lab"
)

// boot is one QEMU run of the demo's disk; it may span several guest
// reboots.
type boot struct {
	d   *demo
	n   int
	vm  *qemu.VM
	log string
	f   *os.File
	sh  *qemu.Shell // once logged in (the Debian system)
}

func (d *demo) boot(ctx context.Context, what string) (*boot, error) {
	return d.bootWith(ctx, what, []qemu.Drive{{Path: d.disk}})
}

// bootWith starts a QEMU with drives instead of the demo's disk alone.
func (d *demo) bootWith(ctx context.Context, what string, drives []qemu.Drive) (*boot, error) {
	d.boots++
	b := &boot{d: d, n: d.boots, log: filepath.Join(d.o.Work, fmt.Sprintf("boot-%d.console.log", d.boots))}
	var err error
	if b.f, err = os.Create(b.log); err != nil {
		return nil, fmt.Errorf("console log: %w", err)
	}
	var log io.Writer = b.f
	if d.o.Verbose {
		log = io.MultiWriter(b.f, os.Stderr)
	}
	b.vm, err = qemu.Start(ctx, qemu.Config{
		Name:     fmt.Sprintf("boot-%d", b.n),
		Firmware: d.o.Firmware,
		Drives:   drives,
		// One QEMU per boot: a guest reboot ends it, and the next boot
		// gets a fresh guestfwd stream (QEMU connects it once, at start).
		NoReboot: true,
		NetDev:   "user,id=n,restrict=on," + d.fwd.GuestFwd(lab.GuestStore),
		Log:      log,
		MemoryMB: d.memoryMB,
		CPUs:     d.cpus,
	})
	if err != nil {
		b.f.Close()
		return nil, err
	}
	d.say("boot %d: %s (console: %s)", b.n, what, d.show(b.log))
	return b, nil
}

func (b *boot) close() {
	b.vm.Close()
	b.f.Close()
}

// expect waits for a console line matching want. A line matching one of
// wrong first ends the demo: the story went another way. The error is one
// line naming what did not come and where the console is.
//
// The harness also matches the unfinished last line, so a line that
// matches is read to its end before it is judged: "slot=a version=1."
// must not count as a wrong version.
func (b *boot) expect(what, want string, wrong ...string) (string, error) {
	wantRe := regexp.MustCompile(want)
	wrongRes := make([]*regexp.Regexp, len(wrong))
	for i, w := range wrong {
		wrongRes[i] = regexp.MustCompile(w)
	}
	deadline := time.Now().Add(b.d.o.StepTimeout)
	for {
		_, line, err := b.vm.ExpectAny(max(time.Until(deadline), time.Millisecond), append([]string{want}, wrong...)...)
		switch {
		case errors.Is(err, qemu.ErrTimeout):
			return "", fmt.Errorf("boot %d: %s: no console line matched %q within %v; console in %s", b.n, what, want, b.d.o.StepTimeout, b.d.show(b.log))
		case errors.Is(err, qemu.ErrExited):
			why := "it powered off"
			if werr := b.vm.Wait(time.Second); werr != nil {
				why = strings.Join(strings.Fields(werr.Error()), " ")
			}
			return "", fmt.Errorf("boot %d: %s: QEMU ended (%s) before a console line matched %q; console in %s", b.n, what, why, want, b.d.show(b.log))
		case err != nil:
			return "", fmt.Errorf("boot %d: %s: %w", b.n, what, err)
		}
		line = strings.TrimSpace(b.wholeLine(line))
		if wantRe.MatchString(line) {
			return line, nil
		}
		for _, re := range wrongRes {
			if re.MatchString(line) {
				return "", fmt.Errorf("boot %d: %s: the console shows %q instead; console in %s", b.n, what, line, b.d.show(b.log))
			}
		}
	}
}

// wholeLine waits briefly for the console line that starts with partial to
// end, and returns it.
func (b *boot) wholeLine(partial string) string {
	for end := time.Now().Add(5 * time.Second); ; {
		text := b.vm.Console()
		if i := strings.LastIndex(text, partial); i >= 0 {
			if nl := strings.IndexByte(text[i:], '\n'); nl >= 0 {
				return text[i : i+nl]
			}
		}
		if time.Now().After(end) {
			return partial
		}
		select {
		case <-b.vm.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// expectQuote is expect that tells what happened and quotes the line.
func (b *boot) expectQuote(what, want string, wrong ...string) error {
	line, err := b.expect(what, want, wrong...)
	if err != nil {
		return err
	}
	b.d.say("%s", what)
	b.d.quote(line)
	return nil
}

// grubChoice waits for GRUB's "twinroot: booting slot ..." line and quotes
// only that message: SeaBIOS mirrors GRUB's screen onto the serial port, so
// the line also holds pieces of the screen copy.
func (b *boot) grubChoice(what, want string, wrong ...string) error {
	line, err := b.expect(what, want, wrong...)
	if err != nil {
		return err
	}
	b.d.say("%s", what)
	b.d.quote(regexp.MustCompile(want).FindString(line))
	return nil
}

// identity waits for init's identity line.
func (b *boot) identity(slot string, r *release) error {
	want := fmt.Sprintf(`twinroot-init: slot=%s version=%s variant=%s`, slot, regexp.QuoteMeta(r.version), r.variant)
	return b.expectQuote(fmt.Sprintf("v%s is up from slot %s", r.version, strings.ToUpper(slot)), want, `twinroot-init: slot=`)
}

func (b *boot) ready() error {
	_, err := b.expect("init ready for commands", `twinroot-init: ready`)
	return err
}

// status runs `updater status` in the guest (the guest's updater finds its
// disk and reads the running slot from /proc/cmdline) and quotes its output.
func (b *boot) status() error {
	if err := b.ready(); err != nil {
		return err
	}
	from := len(b.vm.Console())
	if err := b.vm.Send("run status"); err != nil {
		return err
	}
	line, err := b.expect("updater status in the guest", `twinroot-init: run exit=\d+`)
	if err != nil {
		return err
	}
	out := b.vm.Console()[from:]
	if i := strings.Index(out, "twinroot-init: run exit="); i >= 0 {
		out = out[:i]
	}
	if !strings.HasSuffix(strings.TrimSpace(line), "exit=0") {
		return fmt.Errorf("boot %d: updater status in the guest failed (%s); console in %s", b.n, strings.TrimSpace(line), b.d.show(b.log))
	}
	b.d.say("`updater status` in the guest:")
	for _, l := range strings.Split(out, "\n") {
		// The tty echoes the command typed on the console.
		if l = strings.TrimSpace(l); l != "" && l != "run status" {
			b.d.quote(l)
		}
	}
	return nil
}

// rebooted waits for QEMU to exit after the guest rebooted itself (QEMU
// runs with -no-reboot).
func (b *boot) rebooted() error {
	if err := b.vm.Wait(b.d.o.StepTimeout); err != nil {
		return fmt.Errorf("boot %d: the guest rebooted but QEMU did not end cleanly within %v (%v); console in %s", b.n, b.d.o.StepTimeout, err, b.d.show(b.log))
	}
	return nil
}

// poweroff asks init to power off and waits for QEMU to exit.
func (b *boot) poweroff() error {
	if err := b.vm.Send("poweroff"); err != nil {
		return err
	}
	if err := b.vm.Wait(b.d.o.StepTimeout); err != nil {
		return fmt.Errorf("boot %d: power off: QEMU did not exit cleanly within %v; console in %s", b.n, b.d.o.StepTimeout, b.d.show(b.log))
	}
	b.d.say("powered off")
	return nil
}
