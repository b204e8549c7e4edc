package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// RAUC 1.8 (Debian's rauc and rauc-service) as a peer of updater apply:
// `rauc install` of a plain bundle that holds the same slot.img, into the
// same bytes of the same disk file. Plain, because RAUC's verity and crypt
// formats need device-mapper, which this kernel lacks ("Failed to open
// /dev/mapper/control"). Debian's build streams no bundle (configured
// without --enable-streaming): given an http URL, of any format, it
// downloads the whole bundle to a temporary file, then installs that.
// Both are timed: the bundle as a local file (its download not counted)
// and as a presigned URL of MinIO (download and install).

// raucPolicy is the D-Bus policy of rauc-service that lets root own
// RAUC's bus name; without it `rauc service` cannot start.
const raucPolicy = "/usr/share/dbus-1/system.d/de.pengutronix.rauc.conf"

// raucTools says which Debian package to install when one of RAUC's
// tools is missing.
func raucTools() error {
	for _, t := range []struct{ tool, pkg string }{
		{"rauc", "rauc"}, {"openssl", "openssl"}, {"dbus-daemon", "dbus"}, {"dbus-send", "dbus"},
	} {
		if _, err := exec.LookPath(t.tool); err != nil {
			return fmt.Errorf("%s not found: install Debian's %s (make deps)", t.tool, t.pkg)
		}
	}
	if _, err := os.Stat(raucPolicy); err != nil {
		return fmt.Errorf("%s not found: install Debian's rauc-service (make deps)", raucPolicy)
	}
	return nil
}

// raucPeer is a running RAUC: a private system bus (dbus-daemon with the
// system configuration, on a socket in the work directory, so that no
// system-wide bus is touched), `rauc service` on it with the noop
// bootloader and slot A booted, and two raw slots that are offset loop
// devices over slot A (read-only) and slot B of the bench's disk file.
type raucPeer struct {
	dir     string
	conf    string
	bundle  string
	url     string // the bundle in MinIO, presigned
	status  string // RAUC's central status file
	env     []string
	loops   []string
	busPID  int
	service *exec.Cmd
	exited  chan struct{} // closed when the service has exited
	slotB   string        // the loop device RAUC writes
	bytes   int64         // bundle size
	log     func(string, ...any)
}

// startRAUC sets RAUC up for release r and returns it running; on error
// it has undone whatever it did.
func (b *bench) startRAUC(ctx context.Context, r *release) (p *raucPeer, err error) {
	if b.srv == nil {
		return nil, errors.New("rauc: start MinIO first")
	}
	p = &raucPeer{dir: filepath.Join(b.work, "rauc"), log: b.logf}
	defer func() {
		if err != nil {
			p.stop()
			p = nil
		}
	}()
	if err := os.RemoveAll(p.dir); err != nil {
		return p, err
	}
	mnt := filepath.Join(p.dir, "mnt")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return p, err
	}

	b.logf("rauc: self-signed keyring and a plain bundle of %s", r.slot)
	key, cert := filepath.Join(p.dir, "key.pem"), filepath.Join(p.dir, "cert.pem")
	if _, err := b.run(ctx, nil, "openssl", "req", "-x509", "-newkey", "rsa:4096", "-nodes", "-keyout", key,
		"-out", cert, "-days", "3650", "-subj", "/O=twinroot/CN=twinroot apply bench"); err != nil {
		return p, err
	}
	content := filepath.Join(p.dir, "content")
	if err := os.MkdirAll(content, 0o755); err != nil {
		return p, err
	}
	manifest := "[update]\ncompatible=twinroot-bench\nversion=2.0.0\n\n[bundle]\nformat=plain\n\n[image.rootfs]\nfilename=slot.img\n"
	if err := os.WriteFile(filepath.Join(content, "manifest.raucm"), []byte(manifest), 0o644); err != nil {
		return p, err
	}
	// A hard link: the bundle is built from slot.img's own bytes.
	if err := os.Link(r.slot, filepath.Join(content, "slot.img")); err != nil {
		return p, fmt.Errorf("rauc bundle content: %w", err)
	}
	p.bundle = filepath.Join(p.dir, "bundle.raucb")
	if _, err := b.run(ctx, nil, "rauc", "bundle", "--cert", cert, "--key", key, content, p.bundle); err != nil {
		return p, err
	}
	os.RemoveAll(content)
	fi, err := os.Stat(p.bundle)
	if err != nil {
		return p, err
	}
	p.bytes = fi.Size()
	obj := b.srv.URL(prefix) + "/rauc/bundle.raucb"
	if _, err := b.srv.TryAWS("s3", "cp", "--only-show-errors", p.bundle, obj); err != nil {
		return p, err
	}
	out, err := b.srv.TryAWS("s3", "presign", obj, "--expires-in", "604800")
	if err != nil {
		return p, err
	}
	p.url = strings.TrimSpace(string(out))

	// RAUC's slot B maps slot B's bytes of the disk file that the
	// updater's loop device maps: one loop layer, as the updater writes
	// through (a loop device over the updater's would add a page cache).
	for _, s := range []struct {
		start, size int64
		ro          bool
	}{{b.layout.A.Start, b.layout.A.Size, true}, {b.layout.B.Start, b.layout.B.Size, false}} {
		args := []string{"--find", "--show", "--direct-io=on", "--offset", strconv.FormatInt(s.start, 10), "--sizelimit", strconv.FormatInt(s.size, 10)}
		if s.ro {
			args = append(args, "--read-only")
		}
		out, err := b.run(ctx, nil, "losetup", append(args, b.disk)...)
		if err != nil {
			return p, err
		}
		p.loops = append(p.loops, strings.TrimSpace(string(out)))
	}
	p.slotB = p.loops[1]
	b.logf("rauc: slot A on %s, slot B on %s (offset %d of %s)", p.loops[0], p.slotB, b.layout.B.Start, b.disk)

	p.status = filepath.Join(p.dir, "status.raucs")
	p.conf = filepath.Join(p.dir, "system.conf")
	conf := fmt.Sprintf(`[system]
compatible=twinroot-bench
bootloader=noop
mountprefix=%s
statusfile=%s
max-bundle-download-size=%d

[keyring]
path=%s

[slot.rootfs.0]
device=%s
type=raw
bootname=A

[slot.rootfs.1]
device=%s
type=raw
bootname=B
`, mnt, p.status, p.bytes, cert, p.loops[0], p.slotB)
	if err := os.WriteFile(p.conf, []byte(conf), 0o644); err != nil {
		return p, err
	}

	bus := filepath.Join(p.dir, "bus")
	if len(bus) > 100 {
		return p, fmt.Errorf("rauc: bus socket path %s is too long for a unix socket: give a shorter -work", bus)
	}
	out, err = b.run(ctx, nil, "dbus-daemon", "--system", "--fork", "--print-pid", "--nopidfile", "--address=unix:path="+bus)
	if err != nil {
		return p, err
	}
	if p.busPID, err = strconv.Atoi(strings.TrimSpace(string(out))); err != nil {
		return p, fmt.Errorf("dbus-daemon --print-pid: %q", out)
	}
	p.env = []string{"DBUS_SYSTEM_BUS_ADDRESS=unix:path=" + bus}

	b.logf("rauc: starting rauc service on a private system bus (dbus-daemon %d)", p.busPID)
	logFile, err := os.Create(filepath.Join(p.dir, "service.log"))
	if err != nil {
		return p, err
	}
	defer logFile.Close()
	p.service = exec.Command("rauc", "service", "-c", p.conf, "--override-boot-slot=A")
	// RAUC downloads a remote bundle into a directory of its own under
	// TMPDIR: the work directory's disk, as MinIO's data is.
	p.service.Env = append(os.Environ(), append(p.env, "TMPDIR="+p.dir)...)
	p.service.Stdout, p.service.Stderr = logFile, logFile
	if err := p.service.Start(); err != nil {
		return p, fmt.Errorf("rauc service: %w", err)
	}
	p.exited = make(chan struct{})
	go func() {
		p.service.Wait()
		close(p.exited)
	}()
	// Wait for the bus name without calling RAUC, since a call before the
	// name is owned would have the bus activate a second rauc service.
	for deadline := time.Now().Add(20 * time.Second); ; {
		out, err := b.run(ctx, p.env, "dbus-send", "--system", "--print-reply=literal", "--dest=org.freedesktop.DBus",
			"/org/freedesktop/DBus", "org.freedesktop.DBus.NameHasOwner", "string:de.pengutronix.rauc")
		if err == nil && strings.Contains(string(out), "true") {
			break
		}
		select {
		case <-p.exited:
			return p, fmt.Errorf("rauc service exited: %s", p.logTail())
		case <-ctx.Done():
			return p, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return p, fmt.Errorf("rauc service did not take its bus name in 20s: %s", p.logTail())
		}
	}
	return p, nil
}

// raucInstall times `rauc install` of the bundle, from its local file or,
// if remote, from MinIO. Its CPU seconds are the client's, the service's
// (and the service's children's) and, if remote, MinIO's, read from /proc.
// It checks that RAUC counted one more install into slot B and that slot
// B holds slot.img's bytes.
func (b *bench) raucInstall(ctx context.Context, r *release, remote bool) (measured, error) {
	p := b.rauc
	bundle := p.bundle
	if remote {
		bundle = p.url
	}
	before, err := p.installs()
	if err != nil {
		return measured{}, err
	}
	cpu := func() (time.Duration, error) {
		c, err := procCPU(p.service.Process.Pid)
		if err != nil || !remote {
			return c, err
		}
		s, err := b.serverCPU()
		return c + s, err
	}
	c0, err := cpu()
	if err != nil {
		return measured{}, err
	}
	m, err := b.measure(ctx, p.env, "rauc", "install", bundle)
	if err != nil {
		return m, fmt.Errorf("%w; rauc service: %s", err, p.logTail())
	}
	c1, err := cpu()
	if err != nil {
		return m, err
	}
	m.cpu += c1 - c0
	after, err := p.installs()
	if err != nil {
		return m, err
	}
	if after != before+1 {
		return m, fmt.Errorf("rauc install succeeded but slot rootfs.1 counts %d installs, was %d", after, before)
	}
	sum, err := fileRangeSHA256(b.disk, b.layout.B.Start, r.size)
	if err != nil {
		return m, err
	}
	if sum != r.sha256 {
		return m, fmt.Errorf("after rauc install slot b has SHA-256 %s, slot.img %s", sum, r.sha256)
	}
	return m, nil
}

// installs reads slot B's install count from RAUC's status file.
func (p *raucPeer) installs() (int, error) {
	f, err := os.Open(p.status)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	in := false
	for sc := bufio.NewScanner(f); sc.Scan(); {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			in = line == "[slot.rootfs.1]"
		} else if v, ok := strings.CutPrefix(line, "installed.count="); ok && in {
			return strconv.Atoi(v)
		}
	}
	return 0, nil
}

func fileRangeSHA256(path string, off, n int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, off, n)); err != nil {
		return "", fmt.Errorf("hash %s at %d: %w", path, off, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// logTail is the end of the service's log, on one line.
func (p *raucPeer) logTail() string {
	data, _ := os.ReadFile(filepath.Join(p.dir, "service.log"))
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	return strings.Join(lines, " | ")
}

// stop ends the service and the bus, unmounts a bundle an interrupted
// install left mounted, and detaches the slots' loop devices.
func (p *raucPeer) stop() {
	if p == nil {
		return
	}
	if p.service != nil && p.service.Process != nil {
		p.service.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
			p.service.Process.Kill()
			<-p.exited
		}
		p.log("rauc: service stopped")
	}
	if p.busPID > 0 {
		if err := syscall.Kill(p.busPID, syscall.SIGTERM); err != nil {
			p.log("rauc: stop dbus-daemon %d: %v", p.busPID, err)
		}
	}
	// A bundle mounted under our prefix holds a loop device of its own.
	if mounts, err := os.ReadFile("/proc/self/mounts"); err == nil {
		prefix := filepath.Join(p.dir, "mnt") + "/"
		for _, line := range strings.Split(string(mounts), "\n") {
			if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], prefix) {
				if err := syscall.Unmount(f[1], syscall.MNT_DETACH); err != nil {
					p.log("rauc: unmount %s: %v", f[1], err)
				}
			}
		}
	}
	for _, dev := range p.loops {
		if out, err := exec.Command("losetup", "--detach", dev).CombinedOutput(); err != nil {
			p.log("rauc: losetup --detach %s: %v %s", dev, err, out)
			continue
		}
		p.log("rauc: detached %s", dev)
	}
}
