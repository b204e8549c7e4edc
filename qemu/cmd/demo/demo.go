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
	"github.com/twinroot/twinroot/internal/s3test"
	"github.com/twinroot/twinroot/internal/source"
	"github.com/twinroot/twinroot/qemu"
	"github.com/twinroot/twinroot/qemu/lab"
)

// storePrefix is the folder of the bucket the demo publishes to.
const storePrefix = "fleet"

type options struct {
	KernelDir, GrubDir, Updater, Work string
	// ISO is the installer ISO to install v1 from (make iso); "" builds
	// one. Key names the release key pair it was signed with, so the
	// demo's later releases are signed by a key v1 trusts.
	ISO, Key    string
	Firmware    qemu.Firmware
	StepTimeout time.Duration
	Verbose     bool
	// System is the reference system of the story: debian (bundled
	// services, built from DebianCache) or minimal.
	System      string
	DebianCache string
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
	if (o.ISO == "") != (o.Key == "") {
		return errors.New("--iso and --key go together: the demo signs v2 and v3 with the key the ISO's v1 trusts")
	}
	if o.StepTimeout <= 0 {
		return errors.New("--step-timeout must be positive")
	}
	switch o.System {
	case "minimal":
	case "debian":
		if o.ISO != "" {
			return errors.New("--iso is for the minimal system: the Debian story builds its own ISO")
		}
		if o.DebianCache == "" {
			return errors.New("--debian-cache is required with --system debian")
		}
	default:
		return fmt.Errorf("unknown system %q: want debian or minimal", o.System)
	}
	return nil
}

// release is one version of the minimal system the story uses.
type release struct {
	version string
	serial  uint64
	variant minimal.Variant
	broken  bool // Debian: its web service never becomes healthy

	done chan struct{} // closed when the build below has finished
	dir  string        // release build output (see lab.Release)
	err  error
	told bool // its build was announced
}

// what tells a newcomer how the release behaves at boot.
func (r *release) what() string {
	if r.variant == "" {
		if r.broken {
			return "its web service never becomes healthy"
		}
		return "its services come up healthy"
	}
	switch r.variant {
	case minimal.Unhealthy:
		return "boots, but its health check fails"
	case minimal.Panic:
		return "its init exits at once, so the kernel panics"
	}
	return "boots and passes its health check"
}

// demo holds the story's state and prints its timeline.
type demo struct {
	o     options
	lab   *lab.Lab
	s3    *s3test.Server
	store source.Store
	fwd   *lab.Forwarder
	disk  string
	out   io.Writer
	start time.Time
	boots int
	cwd   string // paths are shown relative to it

	// What differs between the systems: the disk's size, the guest's
	// memory and the device.yaml an ISO the demo builds carries.
	emptyDisk func(string) error
	memoryMB  int
	cpus      int
	isoConfig func() string
}

func (d *demo) say(format string, a ...any) {
	fmt.Fprintf(d.out, "[%6.1fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, a...))
}

// quoter quotes what is written to it, line by line, under the timeline.
type quoter struct{ d *demo }

func (q quoter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		q.d.quote(l)
	}
	return len(p), nil
}

// quote prints a console line (or a line of command output) under the timeline.
func (d *demo) quote(line string) {
	fmt.Fprintf(d.out, "           | %s\n", strings.TrimSpace(line))
}

func run(ctx context.Context, o options, out io.Writer) error {
	// QEMU runs in a temporary directory: every path it gets is absolute.
	for _, p := range []*string{&o.KernelDir, &o.GrubDir, &o.Updater, &o.Work, &o.ISO, &o.Key} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	d := &demo{o: o, out: out, start: time.Now(), emptyDisk: lab.EmptyDisk,
		isoConfig: func() string { return "" }}
	d.cwd, _ = os.Getwd()
	var err error
	if o.System == "debian" {
		d.say("twinroot demo: Debian 13 with bundled services on an A/B disk under QEMU (firmware %s, TCG), updating itself from MinIO; work directory %s", o.Firmware, d.show(o.Work))
		if d.lab, err = lab.New(ctx, o.Work, o.KernelDir, o.GrubDir, o.Updater); err != nil {
			return err
		}
		d.lab.DebianCache = o.DebianCache
		d.lab.DebianLog = quoter{d}
		return d.runDebian(ctx)
	}
	d.say("twinroot demo: an A/B disk under QEMU (firmware %s, TCG) updating itself from MinIO; work directory %s", o.Firmware, d.show(o.Work))
	if d.lab, err = lab.New(ctx, o.Work, o.KernelDir, o.GrubDir, o.Updater); err != nil {
		return err
	}
	if o.Key != "" {
		if err := d.lab.UseKey(o.Key); err != nil {
			return err
		}
	}

	v1 := &release{version: "1.0.0", serial: 1, variant: minimal.OK}
	v2 := &release{version: "2.0.0", serial: 2, variant: minimal.OK}
	v3 := &release{version: "3.0.0", serial: 3, variant: minimal.Unhealthy}
	// Every release starts building at once: v3 finishes while the first
	// guests boot. v1 comes on the installer ISO.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	v1.done = make(chan struct{})
	close(v1.done)
	for _, r := range []*release{v2, v3} {
		r.done = make(chan struct{})
		go func() {
			defer close(r.done)
			r.dir, r.err = d.lab.Release(ctx, r.version, r.serial, r.variant)
		}()
	}
	// Let the builds end before the work directory is left alone.
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

	if err := d.install(ctx, v1); err != nil {
		return err
	}
	if err := d.publish(ctx, v2); err != nil {
		return err
	}
	if err := d.update(ctx, v1, v2); err != nil {
		return err
	}
	if err := d.publish(ctx, v3); err != nil {
		return err
	}
	if err := d.fallback(ctx, v2, v3); err != nil {
		return err
	}
	d.say("done: v%s runs from slot B, committed; v%s failed its trial in slot A, is recorded bad and is never fetched again", v2.version, v3.version)
	d.say("console logs: %s", d.show(filepath.Join(o.Work, "boot-*.console.log")))
	return nil
}

// startStore starts MinIO on 127.0.0.1 with an empty bucket (a fresh data
// directory each run, so the channel starts empty) and the forwarder the
// guests reach it through.
func (d *demo) startStore(ctx context.Context) (stop func(), err error) {
	dir := filepath.Join(d.o.Work, "minio")
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("clear %s: %w", dir, err)
	}
	s3, stopS3, err := s3test.Launch("minio", dir)
	if err != nil {
		if errors.Is(err, s3test.ErrNotInstalled) {
			return nil, fmt.Errorf("%w: run `make s3-servers`", err)
		}
		return nil, err
	}
	d.s3 = s3
	d.store, err = source.OpenStore(ctx, s3.URL(storePrefix), source.Options{
		Endpoint: s3.Endpoint, Region: s3.Region, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey})
	if err == nil {
		d.fwd, err = lab.Forward(s3.Endpoint)
	}
	if err != nil {
		stopS3()
		return nil, err
	}
	d.say("MinIO is the release store: %s on %s (log %s)", s3.URL(storePrefix), s3.Endpoint, d.show(s3.LogFile))
	d.say("the guests reach it as http://%s: QEMU user networking, restricted, one guestfwd to a forwarder on 127.0.0.1:%d", lab.GuestStore, d.fwd.Port())
	return func() {
		d.fwd.Close()
		stopS3()
	}, nil
}

// built waits for the release build of r and says what it is.
func (d *demo) built(r *release) error {
	<-r.done
	if r.err != nil || r.told {
		return r.err
	}
	r.told = true
	fi, err := os.Stat(filepath.Join(r.dir, "slot.img.zst"))
	if err != nil {
		return fmt.Errorf("release %s: %w", r.version, err)
	}
	if r.variant == "" {
		d.say("built release v%s (serial %d, %.1f MB compressed): %s", r.version, r.serial, float64(fi.Size())/1e6, r.what())
	} else {
		d.say("built release v%s (serial %d, %s variant, %.1f MB compressed): %s", r.version, r.serial, r.variant, float64(fi.Size())/1e6, r.what())
	}
	return nil
}

// install boots the installer ISO with a fresh, empty disk, as a user
// would: it shows its plan and asks, the demo types yes, it installs r and
// powers off. Without --iso the demo builds the ISO itself.
func (d *demo) install(ctx context.Context, r *release) error {
	iso := d.o.ISO
	if iso == "" {
		cfg := d.isoConfig()
		if cfg == "" {
			cfg = lab.DeviceYAML(d.s3, storePrefix, "slot_size: 64M\n")
		}
		iso = filepath.Join(d.o.Work, "installer.iso")
		res, err := d.lab.BuildISO(ctx, iso, lab.ISOOptions{Version: r.version, Serial: r.serial, Config: cfg, Release: r.dir})
		if err != nil {
			return err
		}
		d.say("built the installer ISO %s (%.1f MB): v%s, signed, and a device.yaml pointing at the store", d.show(iso), float64(res.Size)/1e6, r.version)
	}
	fi, err := os.Stat(iso)
	if err != nil {
		return fmt.Errorf("installer ISO: %w (run `make iso`)", err)
	}
	d.disk = filepath.Join(d.o.Work, "disk.img")
	if err := d.emptyDisk(d.disk); err != nil {
		return err
	}
	b, err := d.bootWith(ctx, fmt.Sprintf("the installer ISO %s (%.1f MB) in the CD drive, and an empty disk %s", d.show(iso), float64(fi.Size())/1e6, d.show(d.disk)),
		[]qemu.Drive{{Path: iso, Media: "cdrom", ReadOnly: true, BootOrder: 1}, {Path: d.disk}})
	if err != nil {
		return err
	}
	defer b.close()
	failed := `^install failed: `
	steps := []struct{ what, want string }{
		{"it verifies the bundled release against the keys its image trusts", `twinroot installer: release .* manifest signed by a key the image trusts`},
		{"it picks the first fixed disk that is not the medium it booted from and shows its plan", `twinroot installer: plan: install `},
	}
	for _, s := range steps {
		if err := b.expectQuote(s.what, s.want, failed); err != nil {
			return err
		}
	}
	// The question ends without a newline: no whole line to wait for.
	if _, err := b.vm.Expect(`type yes and Enter to erase`, d.o.StepTimeout); err != nil {
		return fmt.Errorf("boot %d: the installer did not ask before erasing the disk: %w; console in %s", b.n, err, d.show(b.log))
	}
	d.say("it asks before it erases the disk; the demo types yes")
	if err := b.vm.Send("yes"); err != nil {
		return err
	}
	for _, s := range []struct{ what, want string }{
		{"it writes slot A while hashing it against the signed manifest", `twinroot installer: writing slot A: 100%`},
		{"installs GRUB for BIOS and UEFI, formats the data partition with the device config", `twinroot installer: installed `},
		{"and powers off", `twinroot installer: done: `},
	} {
		if err := b.expectQuote(s.what, s.want, failed); err != nil {
			return err
		}
	}
	if err := b.rebooted(); err != nil {
		return err
	}
	d.say("installed v%s on %s: GPT, GRUB for BIOS and UEFI, slot A committed, slot B empty", r.version, d.show(d.disk))
	return nil
}

// publish signs r with the demo's key and uploads it to the channel.
func (d *demo) publish(ctx context.Context, r *release) error {
	if err := d.built(r); err != nil {
		return err
	}
	p, err := d.lab.Publish(ctx, d.store, r.dir)
	if err != nil {
		return err
	}
	key := "a key made for this demo, trusted by every image"
	if d.o.Key != "" {
		key = d.show(d.o.Key) + ", the key the installed image trusts"
	}
	d.say("published v%s to channel %q: %d objects, %.1f MB, latest.json last (signed with %s)", r.version, lab.Channel, len(p.Objects), float64(p.Bytes)/1e6, key)
	return nil
}

// update boots the installed old release: it finds next in the store,
// writes it into slot B and reboots into its trial, which commits it.
func (d *demo) update(ctx context.Context, old, next *release) error {
	if err := d.takeUpdate(ctx, "the fresh install", "a", old, next); err != nil {
		return err
	}
	b, err := d.boot(ctx, "the trial of slot B")
	if err != nil {
		return err
	}
	defer b.close()
	if err := b.grubChoice("GRUB boots slot B as a trial (it saves \"0 tries left\" before the kernel starts)", `twinroot: booting slot b \(trial, 0 tries left\)`, `twinroot: booting slot a`); err != nil {
		return err
	}
	if err := b.identity("b", next); err != nil {
		return err
	}
	if err := b.expectQuote("updater boot runs the health check and commits slot B", `twinroot: committed: slot b`, `twinroot: (nothing-to-do|marked-bad|fell-back|unknown-slot|trial-pending):`); err != nil {
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

// takeUpdate is one boot of the committed slot running old: updater boot
// finds next in the store, writes it into the other slot and reboots into
// its trial.
func (d *demo) takeUpdate(ctx context.Context, what, slot string, old, next *release) error {
	other := "b"
	if slot == "b" {
		other = "a"
	}
	b, err := d.boot(ctx, what)
	if err != nil {
		return err
	}
	defer b.close()
	if err := b.grubChoice(fmt.Sprintf("GRUB boots the committed slot %s", strings.ToUpper(slot)), fmt.Sprintf(`twinroot: booting slot %s \(committed\)`, slot), `twinroot: booting slot `+other); err != nil {
		return err
	}
	if err := b.identity(slot, old); err != nil {
		return err
	}
	if err := b.expectQuote("updater boot finds no trial to finish", `twinroot: nothing-to-do:`, `twinroot: (committed|marked-bad|fell-back|unknown-slot):`); err != nil {
		return err
	}
	// The pattern runs to the line's end: the console matches lines as
	// they arrive, and the demo quotes the whole of it.
	want := fmt.Sprintf(`slot %s: %s \(serial %d\) written and verified; .*; armed for \d+ trial boot`, other, strings.ReplaceAll(next.version, ".", `\.`), next.serial)
	if err := b.expectQuote(fmt.Sprintf("it checks the store, finds v%s and streams it into slot %s (chunks the running slot has are copied, not fetched), verifies it and arms one trial", next.version, strings.ToUpper(other)),
		want, `twinroot-init: updater boot exit=`, `^(refused|up-to-date):`); err != nil {
		return err
	}
	if err := b.expectQuote("and reboots into it (reboot policy: now)", `twinroot: rebooting into the trial slot`, `twinroot-init: updater boot exit=`); err != nil {
		return err
	}
	return b.rebooted()
}

// fallback has the device on good take bad: bad's trial fails its health
// check, so the slot is marked bad and the device goes back to good, which
// then refuses bad without fetching it.
func (d *demo) fallback(ctx context.Context, good, bad *release) error {
	if err := d.takeUpdate(ctx, "powered on again", "b", good, bad); err != nil {
		return err
	}

	b, err := d.boot(ctx, "the trial of slot A, whose health check will fail")
	if err != nil {
		return err
	}
	if err := b.grubChoice("GRUB boots slot A as a trial (0 tries left saved first)", `twinroot: booting slot a \(trial, 0 tries left\)`, `twinroot: booting slot b`); err != nil {
		b.close()
		return err
	}
	steps := []struct{ what, want string }{
		{"updater boot runs the health check: it fails, so slot A is marked bad", `twinroot: marked-bad: slot a`},
		{"and it reboots at once into the committed slot B", `twinroot: rebooting`},
	}
	err = b.identity("a", bad)
	for _, s := range steps {
		if err != nil {
			break
		}
		err = b.expectQuote(s.what, s.want, `twinroot: committed:`, `twinroot-init: ready`)
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
	if err := b.identity("b", good); err != nil {
		return err
	}
	if err := b.expectQuote("updater boot finds no trial to finish", `twinroot: nothing-to-do:`, `twinroot: (committed|marked-bad|fell-back|unknown-slot):`); err != nil {
		return err
	}
	refused := fmt.Sprintf(`refused: .*%s failed its trial boot here before`, strings.ReplaceAll(bad.version, ".", `\.`))
	if err := b.expectQuote(fmt.Sprintf("it checks the store again: v%s is still the latest and is refused; its image is not fetched again", bad.version),
		refused, `written and verified`, `twinroot: rebooting`); err != nil {
		return err
	}
	if err := b.status(); err != nil {
		return err
	}
	if err := b.poweroff(); err != nil {
		return err
	}
	if con := b.vm.Console(); strings.Contains(con, "written and verified") || strings.Contains(con, "twinroot: rebooting") {
		return fmt.Errorf("boot %d: the boot after the fallback wrote a slot or rebooted; console in %s", b.n, d.show(b.log))
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
