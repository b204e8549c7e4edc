package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/twinroot/twinroot/image/examples/debian/services"
	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/qemu"
	"github.com/twinroot/twinroot/qemu/lab"
)

// debianGate is the health section of the Debian story's device.yaml: a
// trial is committed only once both bundled services are healthy.
const debianGate = `slot_size: 1G
health:
  containers: [backend, web]
  deadline: 2m
`

// runDebian tells the whole story on the Debian reference system: the
// installer ISO installs v1; its services come up healthy; v2 changes the
// web service's image and is taken at boot, fetching little more than the
// changed layer; v3's web never becomes healthy, so its trial fails the
// health gate and the device falls back to v2, with v3 recorded bad.
func (d *demo) runDebian(ctx context.Context) error {
	d.memoryMB = 2048
	// One guest at a time: two virtual CPUs use both cores (QEMU runs a
	// thread per CPU under TCG), and systemd starts units side by side.
	d.cpus = 2
	d.emptyDisk = lab.EmptyDebianDisk
	d.isoConfig = func() string { return lab.DeviceYAML(d.s3, storePrefix, debianGate) }
	// A Debian boot takes half a minute under TCG, and a failing health
	// gate waits its whole deadline.
	d.o.StepTimeout = max(d.o.StepTimeout, 6*time.Minute)

	v1 := &release{version: "1.0.0", serial: 1}
	v2 := &release{version: "2.0.0", serial: 2}
	v3 := &release{version: "3.0.0", serial: 3, broken: true}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, r := range []*release{v1, v2, v3} {
		r.done = make(chan struct{})
	}
	d.say("building the Debian 13 reference system: debootstrap the first time (a few minutes; cached in %s), then v1, v2 and v3, each with its two services built by podman from a static busybox, no registry", d.show(d.o.DebianCache))
	go func() {
		for _, r := range []*release{v1, v2, v3} {
			r.dir, r.err = d.lab.DebianRelease(ctx, r.version, r.serial, services.Options{Broken: r.broken})
			close(r.done)
		}
	}()
	defer func() {
		cancel()
		for _, r := range []*release{v1, v2, v3} {
			<-r.done
		}
	}()

	stop, err := d.startStore(ctx)
	if err != nil {
		return err
	}
	defer stop()
	if err := d.built(v1); err != nil {
		return err
	}
	if err := d.install(ctx, v1); err != nil {
		return err
	}
	if err := d.publish(ctx, v1); err != nil {
		return err
	}

	b, err := d.boot(ctx, "the fresh install")
	if err != nil {
		return err
	}
	if err := b.grubChoice("GRUB boots the committed slot A", `twinroot: booting slot a \(committed\)`, `twinroot: booting slot b`); err != nil {
		b.close()
		return err
	}
	err = b.debianUp(v1, "its services start from the images baked into slot A; the channel has nothing newer", `up-to-date:`)
	if err == nil {
		err = d.publish(ctx, v2)
	}
	if err == nil {
		err = b.reboot()
	}
	b.close()
	if err != nil {
		return err
	}

	if err := d.takeAtBoot(ctx, "a", v1, v2); err != nil {
		return err
	}
	b, err = d.boot(ctx, "the trial of slot B")
	if err != nil {
		return err
	}
	if err := b.grubChoice("GRUB boots slot B as a trial (it saves \"0 tries left\" before the kernel starts)", `twinroot: booting slot b \(trial, 0 tries left\)`, `twinroot: booting slot a`); err != nil {
		b.close()
		return err
	}
	err = b.debianUp(v2, "updater boot waits for both services to be healthy, then commits slot B", `twinroot: committed: slot b`)
	if err == nil {
		err = d.publish(ctx, v3)
	}
	if err == nil {
		err = b.reboot()
	}
	b.close()
	if err != nil {
		return err
	}

	if err := d.takeAtBoot(ctx, "b", v2, v3); err != nil {
		return err
	}
	b, err = d.boot(ctx, "the trial of slot A, whose web service never becomes healthy")
	if err != nil {
		return err
	}
	err = b.grubChoice("GRUB boots slot A as a trial (0 tries left saved first)", `twinroot: booting slot a \(trial, 0 tries left\)`, `twinroot: booting slot b`)
	for _, s := range []struct{ what, want string }{
		{"the health gate waits its deadline for web to become healthy; it does not, so slot A is marked bad", `twinroot: marked-bad: slot a`},
		{"and the device reboots at once into the committed slot B", `twinroot: rebooting`},
	} {
		if err == nil {
			err = b.expectQuote(s.what, s.want, `twinroot: committed:`)
		}
	}
	if err == nil {
		err = b.rebooted()
	}
	b.close()
	if err != nil {
		return err
	}

	b, err = d.boot(ctx, "the fallback")
	if err != nil {
		return err
	}
	defer b.close()
	if err := b.grubChoice("GRUB boots the committed slot B: slot A is bad", `twinroot: booting slot b \(committed\)`, `twinroot: booting slot a`); err != nil {
		return err
	}
	refused := fmt.Sprintf(`refused: .*%s failed its trial boot here before`, regexp.QuoteMeta(v3.version))
	if err := b.debianUp(v2, fmt.Sprintf("v%s runs again with its services; v%s is still the latest and is refused, not fetched again", v2.version, v3.version), refused); err != nil {
		return err
	}
	if err := b.shellQuote("`updater status` in the guest", "updater status"); err != nil {
		return err
	}
	if err := b.shutdown(); err != nil {
		return err
	}
	st, err := lab.State(d.disk)
	if err != nil {
		return err
	}
	if st.Committed != partition.B || st.A != bootstate.Bad || st.Trial != "" {
		return fmt.Errorf("after the fallback the disk's boot state is %+v, want slot b committed, slot a bad, no trial", st)
	}
	d.say("done: v%s runs from slot B with its services healthy; v%s failed its trial in slot A (web never healthy), is recorded bad and is never fetched again", v2.version, v3.version)
	d.say("console logs: %s", d.show(filepath.Join(d.o.Work, "boot-*.console.log")))
	return nil
}

// takeAtBoot is one boot of the committed slot running old: updater boot
// finds next in the store, writes it into the other slot, and the demo
// prints what the update cost on the wire.
func (d *demo) takeAtBoot(ctx context.Context, slot string, old, next *release) error {
	other := map[string]string{"a": "b", "b": "a"}[slot]
	b, err := d.boot(ctx, fmt.Sprintf("v%s published; the device restarts", next.version))
	if err != nil {
		return err
	}
	defer b.close()
	if err := b.grubChoice(fmt.Sprintf("GRUB boots the committed slot %s", strings.ToUpper(slot)), fmt.Sprintf(`twinroot: booting slot %s \(committed\)`, slot), `twinroot: booting slot `+other); err != nil {
		return err
	}
	want := fmt.Sprintf(`slot %s: %s \(serial %d\) written and verified; fetched (\d+) bytes, reused \d+; armed for \d+ trial boot`, other, regexp.QuoteMeta(next.version), next.serial)
	line, err := b.expect("updater boot takes the update", want, `^(refused|up-to-date):`)
	if err != nil {
		return err
	}
	d.say("at boot, updater boot finds v%s and streams it into slot %s: chunks the running slot has are copied, the rest fetched", next.version, strings.ToUpper(other))
	d.quote(line)
	fetched, _ := strconv.ParseInt(regexp.MustCompile(want).FindStringSubmatch(line)[1], 10, 64)
	if err := d.deltaFigure(old, next, fetched); err != nil {
		return err
	}
	if err := b.expectQuote("and reboots into its trial (reboot policy: now)", `twinroot: rebooting into the trial slot`); err != nil {
		return err
	}
	return b.rebooted()
}

// deltaFigure prints the bytes an update fetched beside the image layers
// that changed and the size of the object.
func (d *demo) deltaFigure(old, next *release, fetched int64) error {
	delta, err := lab.DeltaOf(old.dir, next.dir, fetched)
	if err != nil {
		return err
	}
	d.say("v%s -> v%s on the wire: %d bytes fetched of a %d-byte object (%.2f%%); the image layers that changed (%s) are %d bytes gzipped",
		old.version, next.version, delta.Fetched, delta.Object, delta.Percent(), strings.Join(delta.Layers, ", "), delta.Gzipped)
	return nil
}

// debianUp logs in on the serial console once the system is up, waits for
// updater boot to finish, quotes its outcome and the services' status.
func (b *boot) debianUp(r *release, what, outcome string) error {
	sh, err := qemu.Login(b.vm, "twinroot", b.d.o.StepTimeout)
	if err != nil {
		return fmt.Errorf("boot %d: log in on the console: %w; console in %s", b.n, err, b.d.show(b.log))
	}
	b.sh = sh
	b.d.say("v%s is up: Debian 13, systemd reached multi-user; logged in as root on the serial console", r.version)
	deadline := time.Now().Add(b.d.o.StepTimeout)
	for {
		out, err := sh.Run("systemctl show -P ActiveState twinroot-boot.service")
		if err != nil {
			return err
		}
		if f := strings.Fields(out); len(f) > 0 && (f[len(f)-1] == "active" || f[len(f)-1] == "failed") {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("boot %d: updater boot still running after %v; console in %s", b.n, b.d.o.StepTimeout, b.d.show(b.log))
		}
		time.Sleep(3 * time.Second)
	}
	journal, err := sh.Run("journalctl -b -o cat --no-pager -u twinroot-boot.service | grep -E '^(twinroot: |refused: |up-to-date: )'")
	if err != nil {
		return fmt.Errorf("boot %d: updater boot's journal: %w", b.n, err)
	}
	if !regexp.MustCompile(outcome).MatchString(journal) {
		return fmt.Errorf("boot %d: updater boot's journal has no line like %q: %s", b.n, outcome, strings.TrimSpace(journal))
	}
	b.d.say("%s", what)
	for _, l := range strings.Split(strings.TrimSpace(journal), "\n") {
		b.d.quote(l)
	}
	return b.waitServices()
}

// waitServices waits until every service is active and healthy, then
// quotes `updater containers status`.
func (b *boot) waitServices() error {
	deadline := time.Now().Add(b.d.o.StepTimeout)
	for {
		out, err := b.sh.Run("updater containers status")
		if err != nil {
			return err
		}
		healthy := strings.Count(out, " active/running ") == 2 && strings.Count(out, " healthy ") == 2
		if healthy {
			b.d.say("`updater containers status` in the guest:")
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				b.d.quote(l)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("boot %d: the services are not healthy after %v:\n%s", b.n, b.d.o.StepTimeout, out)
		}
		time.Sleep(5 * time.Second)
	}
}

// shellQuote runs a command in the logged-in shell and quotes its output.
func (b *boot) shellQuote(what, cmd string) error {
	out, err := b.sh.Run(cmd)
	if err != nil {
		return err
	}
	b.d.say("%s:", what)
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		b.d.quote(l)
	}
	return nil
}

// reboot has the logged-in guest restart; QEMU ends (-no-reboot).
func (b *boot) reboot() error {
	if b.sh == nil {
		return errors.New("reboot: not logged in")
	}
	if err := b.vm.Send("systemctl reboot"); err != nil {
		return err
	}
	return b.rebooted()
}

// shutdown powers the logged-in guest off.
func (b *boot) shutdown() error {
	if err := b.vm.Send("systemctl poweroff"); err != nil {
		return err
	}
	if err := b.vm.Wait(b.d.o.StepTimeout); err != nil {
		return fmt.Errorf("boot %d: power off: %v; console in %s", b.n, err, b.d.show(b.log))
	}
	b.d.say("powered off")
	return nil
}
