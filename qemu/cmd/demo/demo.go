package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/twinroot/twinroot/image/examples/minimal"
	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/qemu"
	"github.com/twinroot/twinroot/qemu/lab"
)

type options struct {
	KernelDir, GrubDir, Updater, Work string
	Firmware                          qemu.Firmware
	StepTimeout                       time.Duration
	Verbose                           bool
}

func (o options) validate() error {
	for _, f := range []struct{ name, v string }{{"--kernel-dir", o.KernelDir}, {"--grub-dir", o.GrubDir}, {"--work", o.Work}} {
		if f.v == "" {
			return fmt.Errorf("%s is required", f.name)
		}
	}
	if o.Firmware != qemu.BIOS && o.Firmware != qemu.UEFI {
		return fmt.Errorf("unknown firmware %q: want bios or uefi", o.Firmware)
	}
	if o.StepTimeout <= 0 {
		return errors.New("--step-timeout must be positive")
	}
	return nil
}

// release is one version of the minimal system the story uses.
type release struct {
	version string
	variant minimal.Variant
	image   string
}

// demo holds the story's state and prints its timeline.
type demo struct {
	o     options
	lab   *lab.Lab
	disk  string
	out   io.Writer
	start time.Time
	boots int
	cwd   string // paths are shown relative to it
}

func (d *demo) say(format string, a ...any) {
	fmt.Fprintf(d.out, "[%6.1fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, a...))
}

// quote prints a console line (or a line of command output) under the timeline.
func (d *demo) quote(line string) {
	fmt.Fprintf(d.out, "           | %s\n", strings.TrimSpace(line))
}

func run(ctx context.Context, o options, out io.Writer) error {
	// QEMU runs in a temporary directory: every path it gets is absolute.
	for _, p := range []*string{&o.KernelDir, &o.GrubDir, &o.Updater, &o.Work} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	d := &demo{o: o, out: out, start: time.Now()}
	d.cwd, _ = os.Getwd()
	d.say("twinroot demo: an A/B disk under QEMU (firmware %s, TCG), work directory %s", o.Firmware, d.show(o.Work))
	var err error
	if d.lab, err = lab.New(ctx, o.Work, o.KernelDir, o.GrubDir, o.Updater); err != nil {
		return err
	}
	v1 := &release{version: "1.0.0", variant: minimal.OK}
	v2 := &release{version: "2.0.0", variant: minimal.OK}
	v3 := &release{version: "3.0.0", variant: minimal.Panic}
	for _, r := range []*release{v1, v2, v3} {
		if r.image, err = d.lab.Image(ctx, r.version, r.variant); err != nil {
			return err
		}
		fi, err := os.Stat(r.image)
		if err != nil {
			return err
		}
		what := "boots and passes its health check"
		if r.variant == minimal.Panic {
			what = "its init exits at once, so the kernel panics"
		}
		d.say("built slot image v%s (%s, %.1f MB): %s", r.version, r.variant, float64(fi.Size())/1e6, what)
	}

	d.disk = filepath.Join(o.Work, "disk.img")
	if err := d.lab.Install(ctx, d.disk, v1.version); err != nil {
		return fmt.Errorf("install v%s on %s: %w", v1.version, d.disk, err)
	}
	d.say("installed v%s on a fresh disk image %s: GPT, GRUB for BIOS and UEFI, slot A committed, slot B empty", v1.version, d.show(d.disk))

	if err := d.firstBoot(ctx); err != nil {
		return err
	}
	if err := d.update(ctx); err != nil {
		return err
	}
	if err := d.fallback(ctx); err != nil {
		return err
	}
	d.say("done: v%s runs from slot B; v%s in slot A panicked and is marked bad, so it is never tried again", v2.version, v3.version)
	d.say("console logs: %s", d.show(filepath.Join(o.Work, "boot-*.console.log")))
	return nil
}

// firstBoot boots the fresh install.
func (d *demo) firstBoot(ctx context.Context) error {
	b, err := d.boot(ctx, "the fresh install")
	if err != nil {
		return err
	}
	defer b.close()
	if err := b.grubChoice("GRUB boots the committed slot A", `twinroot: booting slot a \(committed\)`, `twinroot: booting slot b`); err != nil {
		return err
	}
	if err := b.identity("a", "1.0.0"); err != nil {
		return err
	}
	if err := b.expectQuote("updater boot finds nothing to finish", `twinroot: nothing-to-do:`, `twinroot: (committed|marked-bad|fell-back|unknown-slot):`); err != nil {
		return err
	}
	if err := b.status(); err != nil {
		return err
	}
	return b.poweroff()
}

// update stages v2.0.0 into slot B, boots its trial and reboots into it.
func (d *demo) update(ctx context.Context) error {
	r, err := d.lab.Stage(ctx, d.disk, partition.A, "2.0.0", minimal.OK, 1)
	if err != nil {
		return fmt.Errorf("stage v2.0.0 into slot B: %w", err)
	}
	d.say("wrote v%s into slot %s offline (as `updater apply` does) and verified it: sha256 %.16s…", r.Version, upper(r.Slot), r.SHA256)
	d.say("slot %s armed for one trial boot; slot %s stays committed", upper(r.Slot), upper(r.State.Committed))

	b, err := d.boot(ctx, "the trial of slot B")
	if err != nil {
		return err
	}
	defer b.close()
	if err := b.grubChoice("GRUB boots slot B as a trial (it saves \"0 tries left\" before the kernel starts)", `twinroot: booting slot b \(trial, 0 tries left\)`, `twinroot: booting slot a`); err != nil {
		return err
	}
	if err := b.identity("b", "2.0.0"); err != nil {
		return err
	}
	if err := b.expectQuote("updater boot runs the health check and commits slot B", `twinroot: committed: slot b`, `twinroot: (nothing-to-do|marked-bad|fell-back|unknown-slot|trial-pending):`); err != nil {
		return err
	}
	if err := b.ready(); err != nil {
		return err
	}
	d.say("rebooting (sent `reboot` on the console)")
	if err := b.vm.Send("reboot"); err != nil {
		return err
	}
	if err := b.grubChoice("GRUB boots slot B again: it is committed now", `twinroot: booting slot b \(committed\)`, `twinroot: booting slot a`); err != nil {
		return err
	}
	if err := b.identity("b", "2.0.0"); err != nil {
		return err
	}
	if err := b.status(); err != nil {
		return err
	}
	if err := b.poweroff(); err != nil {
		return err
	}
	st, err := lab.State(d.disk)
	if err != nil {
		return err
	}
	if st.Committed != partition.B || st.Trial != "" {
		return fmt.Errorf("after the trial of slot B the disk's boot state is %+v, want slot b committed and no trial", st)
	}
	return nil
}

// fallback stages the panicking v3.0.0 into slot A and boots it.
func (d *demo) fallback(ctx context.Context) error {
	r, err := d.lab.Stage(ctx, d.disk, partition.B, "3.0.0", minimal.Panic, 1)
	if err != nil {
		return fmt.Errorf("stage v3.0.0 into slot A: %w", err)
	}
	d.say("wrote v%s (panic variant) into slot %s and verified it; armed for one trial boot", r.Version, upper(r.Slot))

	b, err := d.boot(ctx, "the trial of slot A, which will panic")
	if err != nil {
		return err
	}
	defer b.close()
	if err := b.grubChoice("GRUB boots slot A as a trial (0 tries left saved first)", `twinroot: booting slot a \(trial, 0 tries left\)`, `twinroot: booting slot b`); err != nil {
		return err
	}
	if err := b.expectQuote("v3.0.0 starts and gives up", `twinroot-init: slot=a version=3\.0\.0 variant=panic`, `twinroot-init: slot=`); err != nil {
		return err
	}
	if err := b.expectQuote("the kernel panics and reboots (panic=5 on the command line)", `Kernel panic - not syncing`, `twinroot-init: ready`); err != nil {
		return err
	}
	if err := b.grubChoice("GRUB falls back to the committed slot B by itself: slot A has no tries left", `twinroot: booting slot b \(committed\)`, `twinroot: booting slot a`); err != nil {
		return err
	}
	if err := b.identity("b", "2.0.0"); err != nil {
		return err
	}
	if err := b.expectQuote("updater boot sees the failed trial and marks slot A bad", `twinroot: fell-back: trial of slot a`, `twinroot: (nothing-to-do|committed|marked-bad|unknown-slot|trial-pending):`); err != nil {
		return err
	}
	if err := b.status(); err != nil {
		return err
	}
	if err := b.poweroff(); err != nil {
		return err
	}
	st, err := lab.State(d.disk)
	if err != nil {
		return err
	}
	if st.Committed != partition.B || st.A != bootstate.Bad || st.Trial != "" {
		return fmt.Errorf("after the fallback the disk's boot state is %+v, want slot b committed, slot a bad, no trial", st)
	}
	return nil
}

// show returns path relative to the working directory when it lies below it.
func (d *demo) show(path string) string {
	if rel, err := filepath.Rel(d.cwd, path); err == nil && d.cwd != "" && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return path
}

func upper(s partition.Slot) string { return strings.ToUpper(string(s)) }
