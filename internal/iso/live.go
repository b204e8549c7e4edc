package iso

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/twinroot/twinroot/internal/config"
	"github.com/twinroot/twinroot/internal/install"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/release"
)

// ErrNoMedium: the device the installer booted from was not found.
var ErrNoMedium = errors.New("installer medium not found")

// Kernel command line parameters of the installer.
const (
	ArgMedium   = "twinroot.medium"    // volume ID of the medium (set by the ISO's grub.cfg)
	ArgDisk     = "twinroot.disk"      // target disk, e.g. /dev/sda; default: the first non-removable disk
	ArgYes      = "twinroot.yes"       // 1: do not ask for confirmation
	ArgWipeData = "twinroot.wipe-data" // 1: allow erasing a disk that holds twinroot data
)

// Live is the installer as it runs from the ISO. Its paths are fields so
// tests can point them at a fake system.
type Live struct {
	Cmdline  string           // /proc/cmdline
	Finder   partition.Finder // the disks; BootMedium is filled in by Run
	MountDir string           // where the medium gets mounted
	// Mount mounts the ISO 9660 file system on dev read-only at dir.
	Mount func(dev, dir string) error
	Out   io.Writer                  // the console(s)
	Ask   func(prompt string) string // reads a line typed on the console
	Wait  time.Duration              // how long to wait for the medium and a disk

	params map[string]string
}

// Run finds and mounts the medium, verifies the bundled release, picks the
// target, shows the plan, asks (unless twinroot.yes=1) and installs. The
// error is one line, for "install failed: <reason>".
func (l *Live) Run(ctx context.Context) (install.Result, error) {
	r, err := l.run(ctx)
	if err != nil {
		msg := strings.ReplaceAll(err.Error(), "\n", "; ")
		if errors.Is(err, partition.ErrHoldsData) {
			msg += "; boot with " + ArgWipeData + "=1 to erase it"
		}
		return r, liveError{err: err, msg: msg}
	}
	return r, nil
}

// liveError is an error with the installer's wording, still matching the
// sentinels of the original.
type liveError struct {
	err error
	msg string
}

func (e liveError) Error() string { return e.msg }
func (e liveError) Unwrap() error { return e.err }

func (l *Live) run(ctx context.Context) (install.Result, error) {
	if err := l.readCmdline(); err != nil {
		return install.Result{}, err
	}
	vol := l.params[ArgMedium]
	if vol == "" {
		return install.Result{}, fmt.Errorf("%w: no %s= on the kernel command line (boot the installer ISO's GRUB entry)", ErrNoMedium, ArgMedium)
	}
	medium, err := l.findMedium(ctx, vol)
	if err != nil {
		return install.Result{}, err
	}
	if err := os.MkdirAll(l.MountDir, 0o755); err != nil {
		return install.Result{}, err
	}
	if err := l.Mount(medium.Path, l.MountDir); err != nil {
		return install.Result{}, fmt.Errorf("mount the installer medium %s: %w", medium.Path, err)
	}
	l.printf("medium %s (%s)", medium.Path, vol)

	rel := filepath.Join(l.MountDir, "twinroot", "release")
	b, slot, err := release.OpenDir(ctx, rel)
	if err != nil {
		return install.Result{}, err
	}
	m := b.Manifest
	l.printf("release %s (serial %d, channel %s), manifest signed by a key the image trusts (%s)",
		m.Version, m.Serial, m.Channel, strings.Join(slot.Keys, ", "))

	var cfgPath string
	slotSize := int64(0)
	if p := filepath.Join(l.MountDir, "twinroot", "device.yaml"); exists(p) {
		raw, err := os.ReadFile(p)
		if err != nil {
			return install.Result{}, err
		}
		// Parse, not Load: the file mode on an ISO says nothing, the
		// installer writes it 0600 onto the data partition.
		c, err := config.Parse(raw)
		if err != nil {
			return install.Result{}, fmt.Errorf("device config on the medium: %w", err)
		}
		cfgPath, slotSize = p, c.SlotSize
		l.printf("device config: source %s, channel %s", c.Source, c.Channel)
	} else {
		l.printf("no device config on the medium: the data partition gets none")
	}

	f := l.Finder
	f.BootMedium = append(f.BootMedium, medium.Name)
	wipe := l.params[ArgWipeData] == "1"
	target := l.params[ArgDisk]
	if target == "" {
		d, err := l.chooseDisk(ctx, f, wipe)
		if err != nil {
			return install.Result{}, err
		}
		target = d.Path
	}
	yes := l.params[ArgYes] == "1"
	var lastPct int64 = -1
	opts := install.Options{
		Disk:     target,
		Image:    rel,
		GrubDir:  filepath.Join(l.MountDir, "twinroot", "grub"),
		SlotSize: slotSize,
		WipeData: wipe,
		Config:   cfgPath,
		Finder:   &f,
		Confirm: func(p install.Plan) error {
			l.printf("plan: install %s onto %s (%d MiB): GPT, GRUB for BIOS and UEFI, slots A and B of %d MiB, data partition of %d MiB",
				m.Version, p.Disk, p.DiskSize>>20, p.Layout.A.Size>>20, p.Layout.Data.Size>>20)
			if p.Wipes {
				l.printf("%s holds twinroot data: it will be ERASED (%s=1)", p.Disk, ArgWipeData)
			}
			if yes {
				l.printf("erasing %s without asking (%s=1)", p.Disk, ArgYes)
				return nil
			}
			answer := l.Ask(fmt.Sprintf("type yes and Enter to erase everything on %s and install %s: ", p.Disk, m.Version))
			if strings.TrimSpace(answer) != "yes" {
				return fmt.Errorf("%w: the answer was %q", install.ErrNotConfirmed, strings.TrimSpace(answer))
			}
			return nil
		},
		Progress: func(done, total int64) {
			pct := done * 100 / max(total, 1)
			if pct/10 != lastPct/10 || done == total {
				lastPct = pct
				l.printf("writing slot A: %d%% (%d of %d MiB)", pct, done>>20, total>>20)
			}
		},
	}
	r, err := install.Install(ctx, opts)
	if err != nil {
		return r, err
	}
	l.printf("installed %s on %s: slot A verified (sha256 %s), GRUB for BIOS and UEFI, data partition formatted", m.Version, r.Disk, r.SHA256)
	return r, nil
}

func (l *Live) printf(format string, a ...any) {
	fmt.Fprintf(l.Out, "twinroot installer: "+format+"\n", a...)
}

func (l *Live) readCmdline() error {
	b, err := os.ReadFile(l.Cmdline)
	if err != nil {
		return fmt.Errorf("read the kernel command line: %w", err)
	}
	l.params = map[string]string{}
	for _, f := range strings.Fields(string(b)) {
		if k, v, ok := strings.Cut(f, "="); ok && strings.HasPrefix(k, "twinroot.") {
			l.params[k] = v
		}
	}
	return nil
}

// findMedium waits for the block device holding the ISO 9660 volume vol:
// drivers probe disks and CD drives asynchronously.
func (l *Live) findMedium(ctx context.Context, vol string) (partition.Disk, error) {
	deadline := time.Now().Add(l.Wait)
	for {
		disks, _ := l.allDisks()
		for _, d := range disks {
			if volumeID(d.Path) == vol {
				return d, nil
			}
		}
		if time.Now().After(deadline) {
			return partition.Disk{}, fmt.Errorf("%w: no drive holds volume %s after %v", ErrNoMedium, vol, l.Wait)
		}
		select {
		case <-ctx.Done():
			return partition.Disk{}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// allDisks lists every block device, CD drives included (Finder.List
// leaves them out, as no install goes there).
func (l *Live) allDisks() ([]partition.Disk, error) {
	ents, err := os.ReadDir(l.Finder.SysBlock)
	if err != nil {
		return nil, err
	}
	var out []partition.Disk
	for _, e := range ents {
		if d, err := l.Finder.Lookup(e.Name()); err == nil {
			out = append(out, d)
		}
	}
	return out, nil
}

// chooseDisk waits until Finder.Choose finds a target, or Wait passes.
func (l *Live) chooseDisk(ctx context.Context, f partition.Finder, wipe bool) (partition.Disk, error) {
	deadline := time.Now().Add(l.Wait)
	for {
		d, err := f.Choose(wipe)
		if err == nil {
			return d, nil
		}
		// A disk that is there but refused will not change its mind.
		if !errors.Is(err, partition.ErrNoDisk) || errors.Is(err, partition.ErrHoldsData) || time.Now().After(deadline) {
			return partition.Disk{}, err
		}
		select {
		case <-ctx.Done():
			return partition.Disk{}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// volumeID reads the volume ID of an ISO 9660 file system on dev ("" when
// there is none): the primary volume descriptor is sector 16 (of 2048
// bytes), with "CD001" at byte 1 and the 32-byte ID at byte 40.
func volumeID(dev string) string {
	f, err := os.Open(dev)
	if err != nil {
		return ""
	}
	defer f.Close()
	b := make([]byte, 2048)
	if _, err := f.ReadAt(b, 16*2048); err != nil {
		return ""
	}
	if b[0] != 1 || string(b[1:6]) != "CD001" {
		return ""
	}
	return strings.TrimRight(string(b[40:72]), " ")
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// LineReader returns an Ask that prints the prompt to out and reads one
// line from each of ins (every console: the first answer wins).
func LineReader(out io.Writer, ins ...io.Reader) func(string) string {
	lines := make(chan string)
	for _, in := range ins {
		go func() {
			sc := bufio.NewScanner(in)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
	}
	return func(prompt string) string {
		fmt.Fprint(out, prompt)
		return <-lines
	}
}
