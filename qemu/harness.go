package qemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Firmware selects what the guest boots with.
type Firmware string

const (
	// BIOS is SeaBIOS, QEMU's default firmware for -machine pc.
	BIOS Firmware = "bios"
	// UEFI is OVMF, without Secure Boot.
	UEFI Firmware = "uefi"
)

// Where Debian's ovmf package puts the 4 MiB OVMF build.
const (
	DefaultOVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	DefaultOVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// DefaultBinary is the QEMU system emulator the harness runs.
const DefaultBinary = "qemu-system-x86_64"

// Errors callers act on, checked with errors.Is.
var (
	// ErrTimeout: the console did not show what was expected in time, or
	// QEMU did not exit in time.
	ErrTimeout = errors.New("timed out")
	// ErrExited: QEMU ended (by itself, by Kill or by its context) while
	// something still waited for console output.
	ErrExited = errors.New("QEMU has exited")
	// ErrKilled: Wait was called on a guest that was killed rather than
	// powered off.
	ErrKilled = errors.New("QEMU was killed")
)

// Drive is one block device of the guest.
type Drive struct {
	Path string
	// Media is "disk" (the default) or "cdrom".
	Media string
	// Interface is "virtio" (the default for disks), "ide" (the default
	// for CD-ROMs) or "usb" (a removable usb-storage stick; disks only).
	Interface string
	// ReadOnly opens the file read-only; a CD-ROM always is.
	ReadOnly bool
	// Snapshot sends the guest's writes to a temporary file that QEMU
	// drops at exit, so one image can serve several tests.
	Snapshot bool
	// BootOrder puts the drive into the firmware's boot order: 1 boots
	// first, 2 next; 0 leaves the drive to the firmware's default order.
	BootOrder int
	// Blkdebug, when set, is a config file of QEMU's blkdebug driver,
	// which then sits between the guest and Path and fails the requests
	// its [inject-error] rules name, with real I/O errors in the guest.
	Blkdebug string
}

// Config describes one guest.
type Config struct {
	// Name is used in error messages and logs; it defaults to the base
	// name of the first drive or of the kernel.
	Name     string
	Firmware Firmware // default BIOS
	Drives   []Drive

	// Direct kernel boot (optional): QEMU loads these instead of the
	// firmware booting a drive.
	Kernel, Initrd, Append string

	MemoryMB int // default 512
	CPUs     int // default 1

	// NetDev is an optional -netdev specification; it adds a virtio-net
	// card. It must be user networking with restrict=on, for example
	// "user,id=n,restrict=on,guestfwd=tcp:10.0.2.100:9000-tcp:127.0.0.1:9310".
	NetDev string

	// NoReboot makes a guest reboot end QEMU (-no-reboot). Without it
	// the guest restarts in the same QEMU and the console goes on.
	NoReboot bool

	// Log receives a copy of the cleaned console, RawLog of the console
	// bytes exactly as QEMU wrote them. Either may be nil.
	Log, RawLog io.Writer

	// ExtraArgs are appended to QEMU's command line, for devices the
	// harness has no field for, e.g. {"-device", "i6300esb",
	// "-watchdog-action", "reset"}. Network options are refused here.
	ExtraArgs []string

	// Binary is the QEMU to run; default DefaultBinary.
	Binary string
	// OVMFCode is the UEFI firmware; default DefaultOVMFCode.
	OVMFCode string
	// OVMFVars, if set, is a UEFI variable store the guest uses in place
	// and that outlives it. If empty, the guest gets a fresh copy of
	// DefaultOVMFVars in its temporary directory.
	OVMFVars string
	// TempDir is where the guest's temporary directory is made; default
	// os.TempDir().
	TempDir string
}

// VM is a running (or ended) QEMU guest.
type VM struct {
	name    string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	con     *console
	stderr  *tailBuffer
	dir     string
	started time.Time

	killed atomic.Bool
	done   chan struct{} // closed when QEMU has been reaped
	ended  time.Time     // set before done is closed
	err    error         // QEMU's exit error, set before done is closed

	closeOnce sync.Once
	closeErr  error
}

// Start launches QEMU. The guest is killed when ctx is canceled; Close must
// be called in any case to remove its temporary files.
func Start(ctx context.Context, cfg Config) (*VM, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("qemu %s: %w", cfg.Name, err)
	}
	if _, err := exec.LookPath(cfg.Binary); err != nil {
		return nil, fmt.Errorf("qemu %s: %w", cfg.Name, err)
	}
	dir, err := os.MkdirTemp(cfg.TempDir, "qemu-"+fileSafe(cfg.Name)+"-")
	if err != nil {
		return nil, fmt.Errorf("qemu %s: temporary directory: %w", cfg.Name, err)
	}
	vars := cfg.OVMFVars
	if cfg.Firmware == UEFI && vars == "" {
		vars = filepath.Join(dir, "OVMF_VARS.fd")
		if err := copyFile(vars, DefaultOVMFVars); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("qemu %s: copy UEFI variables: %w", cfg.Name, err)
		}
	}
	args, err := cfg.args(vars)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("qemu %s: %w", cfg.Name, err)
	}

	v := &VM{
		name:   cfg.Name,
		con:    newConsole(cfg.Name, cfg.Log, cfg.RawLog),
		stderr: &tailBuffer{max: 4096},
		dir:    dir,
		done:   make(chan struct{}),
	}
	cmd := exec.CommandContext(ctx, cfg.Binary, args...)
	cmd.Dir = dir
	cmd.Stdout = v.con
	cmd.Stderr = v.stderr
	cmd.SysProcAttr = sysProcAttr()
	// The console copy ends when QEMU's stdout closes; do not let a
	// stuck pipe hold Wait forever after a kill.
	cmd.WaitDelay = 10 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("qemu %s: stdin pipe: %w", cfg.Name, err)
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("qemu %s: start %s: %w", cfg.Name, cfg.Binary, err)
	}
	v.cmd, v.stdin, v.started = cmd, stdin, time.Now()
	go v.reap(ctx)
	return v, nil
}

func (v *VM) reap(ctx context.Context) {
	err := v.cmd.Wait()
	v.ended, v.err = time.Now(), err
	var reason string
	switch {
	case v.killed.Load():
		reason = "killed by the harness"
	case ctx.Err() != nil:
		reason = fmt.Sprintf("killed: %v", context.Cause(ctx))
	case err == nil:
		reason = "QEMU exited with status 0"
	default:
		reason = fmt.Sprintf("QEMU failed: %v", err)
		if s := strings.TrimSpace(v.stderr.String()); s != "" {
			reason += "; stderr: " + s
		}
	}
	v.con.end(reason)
	close(v.done)
}

// Name is the guest's name as used in messages.
func (v *VM) Name() string { return v.name }

// Expect waits until a console line matches the regular expression pattern
// and consumes the console up to the end of the match. It returns the whole
// line. It fails with ErrTimeout, or with ErrExited as soon as QEMU ends;
// both errors name the pattern and quote the last console lines.
func (v *VM) Expect(pattern string, timeout time.Duration) (line string, err error) {
	_, line, err = v.con.expect(timeout, pattern)
	return line, err
}

// ExpectAny is Expect for several patterns; idx tells which one matched
// first (the leftmost match in the earliest line).
func (v *VM) ExpectAny(timeout time.Duration, patterns ...string) (idx int, line string, err error) {
	return v.con.expect(timeout, patterns...)
}

// Send types line and a newline on the serial console.
func (v *VM) Send(line string) error {
	_, err := v.Write([]byte(line + "\n"))
	return err
}

// Write sends raw bytes to the serial console (for example "\x03").
func (v *VM) Write(p []byte) (int, error) {
	select {
	case <-v.done:
		return 0, fmt.Errorf("qemu %s: send %q: %w", v.name, p, ErrExited)
	default:
	}
	n, err := v.stdin.Write(p)
	if err != nil {
		return n, fmt.Errorf("qemu %s: send %q: %w", v.name, p, err)
	}
	return n, nil
}

// Kill cuts the power: QEMU gets SIGKILL, so whatever the guest had not
// handed to the disk image yet is lost. It returns once QEMU is reaped.
// Killing a guest that has already ended does nothing.
func (v *VM) Kill() error {
	select {
	case <-v.done:
		return nil
	default:
	}
	v.killed.Store(true)
	if err := v.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("qemu %s: kill: %w", v.name, err)
	}
	<-v.done
	return nil
}

// PowerCutAfter waits for pattern like Expect, waits delay more, then kills
// the guest like Kill. It returns the matched line.
func (v *VM) PowerCutAfter(pattern string, timeout, delay time.Duration) (string, error) {
	line, err := v.Expect(pattern, timeout)
	if err != nil {
		return "", err
	}
	if delay > 0 {
		time.Sleep(delay)
	}
	return line, v.Kill()
}

// Wait waits for QEMU to exit by itself, as it does when the guest powers
// off (or reboots, with NoReboot). It returns QEMU's exit error, ErrKilled
// if the guest was killed instead, or ErrTimeout.
func (v *VM) Wait(timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-v.done:
	case <-timer.C:
		return fmt.Errorf("qemu %s: %w: still running after %v; %s", v.name, ErrTimeout, timeout, v.con.tail(tailLines))
	}
	if v.killed.Load() {
		return fmt.Errorf("qemu %s: %w", v.name, ErrKilled)
	}
	if v.err != nil {
		return fmt.Errorf("qemu %s: %w; stderr: %s", v.name, v.err, strings.TrimSpace(v.stderr.String()))
	}
	return nil
}

// Done is closed once QEMU has ended and been reaped.
func (v *VM) Done() <-chan struct{} { return v.done }

// Elapsed is the time from Start until QEMU ended, or until now while it runs.
func (v *VM) Elapsed() time.Duration {
	select {
	case <-v.done:
		return v.ended.Sub(v.started)
	default:
		return time.Since(v.started)
	}
}

// Console returns the cleaned console output seen so far.
func (v *VM) Console() string { return v.con.String() }

// Close kills QEMU if it still runs and removes the guest's temporary
// files. It is safe to call more than once.
func (v *VM) Close() error {
	v.closeOnce.Do(func() {
		err := v.Kill()
		if rerr := os.RemoveAll(v.dir); rerr != nil && err == nil {
			err = fmt.Errorf("qemu %s: remove temporary files: %w", v.name, rerr)
		}
		v.closeErr = err
	})
	return v.closeErr
}

func (cfg Config) withDefaults() Config {
	if cfg.Firmware == "" {
		cfg.Firmware = BIOS
	}
	if cfg.MemoryMB == 0 {
		cfg.MemoryMB = 512
	}
	if cfg.CPUs == 0 {
		cfg.CPUs = 1
	}
	if cfg.Binary == "" {
		cfg.Binary = DefaultBinary
	}
	if cfg.OVMFCode == "" {
		cfg.OVMFCode = DefaultOVMFCode
	}
	drives := make([]Drive, len(cfg.Drives))
	for i, d := range cfg.Drives {
		if d.Media == "" {
			d.Media = "disk"
		}
		if d.Interface == "" {
			d.Interface = "virtio"
			if d.Media == "cdrom" {
				d.Interface = "ide"
			}
		}
		if d.Media == "cdrom" {
			d.ReadOnly = true
		}
		// QEMU runs in its own temporary directory: relative paths would
		// name other files there.
		if abs, err := filepath.Abs(d.Path); err == nil && d.Path != "" {
			d.Path = abs
		}
		if abs, err := filepath.Abs(d.Blkdebug); err == nil && d.Blkdebug != "" {
			d.Blkdebug = abs
		}
		drives[i] = d
	}
	cfg.Drives = drives
	if cfg.Name == "" {
		switch {
		case len(cfg.Drives) > 0:
			cfg.Name = filepath.Base(cfg.Drives[0].Path)
		case cfg.Kernel != "":
			cfg.Name = filepath.Base(cfg.Kernel)
		default:
			cfg.Name = "guest"
		}
	}
	return cfg
}

func (cfg Config) validate() error {
	if cfg.Firmware != BIOS && cfg.Firmware != UEFI {
		return fmt.Errorf("unknown firmware %q (want %q or %q)", cfg.Firmware, BIOS, UEFI)
	}
	if len(cfg.Drives) == 0 && cfg.Kernel == "" {
		return errors.New("nothing to boot: no drive and no kernel")
	}
	if cfg.Kernel == "" && (cfg.Initrd != "" || cfg.Append != "") {
		return errors.New("initrd or kernel command line given without a kernel")
	}
	ide := 0
	for i, d := range cfg.Drives {
		if d.Path == "" {
			return fmt.Errorf("drive %d: no path", i)
		}
		if _, err := os.Stat(d.Path); err != nil {
			return fmt.Errorf("drive %d: %w", i, err)
		}
		if d.Media != "disk" && d.Media != "cdrom" {
			return fmt.Errorf("drive %d (%s): unknown media %q (want disk or cdrom)", i, d.Path, d.Media)
		}
		switch d.Interface {
		case "virtio", "usb":
			if d.Media == "cdrom" {
				return fmt.Errorf("drive %d (%s): a CD-ROM needs the ide interface, not %s", i, d.Path, d.Interface)
			}
		case "ide":
			ide++
		default:
			return fmt.Errorf("drive %d (%s): unknown interface %q (want virtio, ide or usb)", i, d.Path, d.Interface)
		}
		if d.Blkdebug != "" {
			if _, err := os.Stat(d.Blkdebug); err != nil {
				return fmt.Errorf("drive %d (%s): blkdebug config: %w", i, d.Path, err)
			}
		}
		if d.BootOrder < 0 {
			return fmt.Errorf("drive %d (%s): negative boot order", i, d.Path)
		}
	}
	if ide > 4 {
		return fmt.Errorf("%d IDE drives: the pc machine has room for 4", ide)
	}
	if cfg.NetDev != "" {
		if err := checkNetDev(cfg.NetDev); err != nil {
			return err
		}
	}
	for _, a := range cfg.ExtraArgs {
		switch strings.TrimLeft(a, "-") {
		case "net", "netdev", "nic":
			return fmt.Errorf("extra argument %s: networking goes through Config.NetDev", a)
		}
	}
	return nil
}

// checkNetDev enforces the network rule of this project: user networking
// with restrict=on, and forwards only to and from 127.0.0.1.
func checkNetDev(spec string) error {
	opts := splitOpts(spec)
	if opts[0] != "user" {
		return fmt.Errorf("netdev %q: only user networking is allowed", spec)
	}
	restricted := false
	for _, o := range opts[1:] {
		key, val, _ := strings.Cut(o, "=")
		switch key {
		case "restrict":
			restricted = val == "on" || val == "yes" || val == "y"
		case "hostfwd":
			// [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport
			if !strings.HasPrefix(val, "tcp:127.0.0.1:") && !strings.HasPrefix(val, "udp:127.0.0.1:") {
				return fmt.Errorf("netdev %q: hostfwd must listen on 127.0.0.1 (tcp:127.0.0.1:PORT-:PORT)", spec)
			}
		case "guestfwd":
			// [tcp]:server:port-dev; dev must be a 127.0.0.1 port
			_, target, _ := strings.Cut(val, "-")
			if !strings.HasPrefix(target, "tcp:127.0.0.1:") {
				return fmt.Errorf("netdev %q: guestfwd must lead to tcp:127.0.0.1:PORT", spec)
			}
		}
	}
	if !restricted {
		return fmt.Errorf("netdev %q: restrict=on is required", spec)
	}
	return nil
}

// splitOpts splits a QEMU option string at single commas (",," is an
// escaped comma).
func splitOpts(s string) []string {
	var opts []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == ',' {
			if i+1 < len(s) && s[i+1] == ',' {
				cur.WriteByte(',')
				i++
				continue
			}
			opts = append(opts, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(s[i])
	}
	return append(opts, cur.String())
}

// optPath escapes a value for a QEMU option string.
func optPath(p string) string { return strings.ReplaceAll(p, ",", ",,") }

// args builds QEMU's command line; vars is the UEFI variable store.
func (cfg Config) args(vars string) ([]string, error) {
	args := []string{
		"-name", optPath(cfg.Name),
		"-machine", "pc",
		"-accel", "tcg",
		"-m", fmt.Sprint(cfg.MemoryMB),
		"-smp", fmt.Sprint(cfg.CPUs),
		"-nographic",
		"-monitor", "none",
		"-parallel", "none",
		"-chardev", "stdio,id=console,signal=off",
		"-serial", "chardev:console",
		// QEMU's default NIC is unrestricted user networking.
		"-nic", "none",
	}
	if cfg.Firmware == UEFI {
		args = append(args,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+optPath(cfg.OVMFCode),
			"-drive", "if=pflash,format=raw,unit=1,file="+optPath(vars))
	}
	usb, ide := false, 0
	for i, d := range cfg.Drives {
		id := fmt.Sprintf("drive%d", i)
		drive := "if=none,id=" + id + ",format=raw,file=" + optPath(d.Path)
		if d.Blkdebug != "" {
			drive = "if=none,id=" + id + ",format=raw,file.driver=blkdebug,file.config=" + optPath(d.Blkdebug) +
				",file.image.filename=" + optPath(d.Path)
		}
		if d.ReadOnly {
			drive += ",readonly=on"
		}
		if d.Snapshot {
			drive += ",snapshot=on"
		}
		var dev string
		switch d.Interface {
		case "virtio":
			dev = "virtio-blk-pci,drive=" + id
		case "ide":
			kind := "ide-hd"
			if d.Media == "cdrom" {
				kind = "ide-cd"
			}
			dev = fmt.Sprintf("%s,drive=%s,bus=ide.%d,unit=%d", kind, id, ide/2, ide%2)
			ide++
		case "usb":
			if !usb {
				args = append(args, "-device", "qemu-xhci,id=xhci")
				usb = true
			}
			dev = "usb-storage,bus=xhci.0,removable=on,drive=" + id
		}
		if d.BootOrder > 0 {
			dev += fmt.Sprintf(",bootindex=%d", d.BootOrder)
		}
		args = append(args, "-drive", drive, "-device", dev)
	}
	if cfg.Kernel != "" {
		args = append(args, "-kernel", cfg.Kernel)
		if cfg.Initrd != "" {
			args = append(args, "-initrd", cfg.Initrd)
		}
		if cfg.Append != "" {
			args = append(args, "-append", cfg.Append)
		}
	}
	if cfg.NetDev != "" {
		netdev, id := cfg.NetDev, ""
		for _, o := range splitOpts(netdev)[1:] {
			if v, ok := strings.CutPrefix(o, "id="); ok {
				id = v
			}
		}
		if id == "" {
			id = "net0"
			netdev += ",id=" + id
		}
		// romfile= drops iPXE: a guest that fails to boot from disk
		// must say so, not wait for a network boot.
		args = append(args, "-netdev", netdev, "-device", "virtio-net-pci,romfile=,netdev="+optPath(id))
	}
	if cfg.NoReboot {
		args = append(args, "-no-reboot")
	}
	return append(args, cfg.ExtraArgs...), nil
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// fileSafe turns a guest name into something usable in a file name.
func fileSafe(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, name)
}

// tailBuffer keeps the last max bytes written to it (QEMU's stderr).
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		b.buf = append([]byte(nil), b.buf[len(b.buf)-b.max:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
