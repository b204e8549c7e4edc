package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/mount"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/twinroot/twinroot/internal/initramfs"
	"github.com/twinroot/twinroot/internal/watchdog"
)

// diskWait bounds the wait for a disk: drivers probe asynchronously, and a
// machine without a disk still has to reach the console.
const diskWait = 10 * time.Second

// pid1 sets the machine up and runs init; its return is PID 1's exit code.
func pid1(s *system) int {
	s.reap = true
	mountKernelFilesystems(s)
	if err := reopenConsole(); err != nil {
		s.printf("%v", err)
	}
	os.Setenv("PATH", "/bin:/sbin:/usr/bin:/usr/sbin")
	os.Setenv("HOME", "/root")

	start := time.Now()
	for _, err := range initramfs.LoadModules() {
		s.printf("%v", err)
	}
	armWatchdog(s)
	disks := waitDisks("/sys/block", diskWait)
	if len(disks) == 0 {
		s.printf("no disk after %v", diskWait)
	} else {
		s.printf("modules loaded, disks %s (%.1fs)", strings.Join(disks, " "), time.Since(start).Seconds())
	}
	quietConsole(s)
	if msg, err := setupNetwork(s); err != nil {
		s.printf("network: %v", err)
	} else if msg != "" {
		s.printf("network %s", msg)
	}
	if msg, err := mountSlot(s.slot()); err != nil {
		s.printf("slot root: %v", err)
	} else if msg != "" {
		s.printf("%s", msg)
	}
	if msg, err := mountData("/sys/class/block", s.data); err != nil {
		s.printf("data partition: %v", err)
	} else {
		s.printf("%s", msg)
	}

	if !s.start() {
		return 1
	}
	for {
		// serve returns when a read ends (a ^D on the serial line); the
		// console is still there, and PID 1 must not exit.
		if err := s.serve(); err != nil && !errors.Is(err, io.EOF) {
			s.printf("%v", err)
		}
		time.Sleep(time.Second)
	}
}

// armWatchdog arms the watchdog on a trial boot, for `updater boot` to take
// over: a trial that hangs from here on is reset, and GRUB falls back.
func armWatchdog(s *system) {
	if v, _ := s.kernelArg("twinroot.trial"); v != "1" {
		return
	}
	timeout := watchdog.DefaultTimeout
	if v, ok := s.kernelArg("twinroot.watchdog"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			s.printf("twinroot.watchdog=%q is not a number of seconds; using %v", v, timeout)
		} else {
			timeout = time.Duration(n) * time.Second
		}
	}
	if err := watchdog.Arm(watchdog.Device, timeout); err != nil {
		s.printf("watchdog not armed: %v", err)
		return
	}
	s.printf("watchdog armed (%v)", timeout)
}

func mountKernelFilesystems(s *system) {
	for _, err := range initramfs.MountKernelFilesystems() {
		s.printf("%v", err)
	}
}

// reopenConsole makes /dev/console (now on devtmpfs) stdin, stdout and
// stderr, in case the kernel found no console node to open for init.
func reopenConsole() error {
	f, err := os.OpenFile("/dev/console", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open console: %w", err)
	}
	defer f.Close()
	for fd := 0; fd <= 2; fd++ {
		if err := unix.Dup3(int(f.Fd()), fd, 0); err != nil {
			return fmt.Errorf("console on fd %d: %w", fd, err)
		}
	}
	return nil
}

// waitDisks polls dir (/sys/block) until a disk appears or timeout passes,
// and returns the disks seen.
func waitDisks(dir string, timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	for {
		var disks []string
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			n := e.Name()
			if strings.HasPrefix(n, "vd") || strings.HasPrefix(n, "sd") || strings.HasPrefix(n, "nvme") {
				disks = append(disks, n)
			}
		}
		if len(disks) > 0 || time.Now().After(deadline) {
			sort.Strings(disks)
			return disks
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// quietConsole keeps informational kernel messages (link up, disk probes)
// from breaking into init's console lines once the boot is past them, unless
// the command line asks for a log level.
func quietConsole(s *system) {
	if _, ok := s.kernelArg("loglevel"); ok {
		return
	}
	b, _ := os.ReadFile(s.cmdline)
	for _, f := range strings.Fields(string(b)) {
		if f == "debug" {
			return
		}
	}
	os.WriteFile("/proc/sys/kernel/printk", []byte("5\n"), 0o644)
}

// setupNetwork gives the first Ethernet interface QEMU user networking's
// fixed address, 10.0.2.15/24 via 10.0.2.2 with DNS on 10.0.2.3, so a guest
// reaches the host's servers through guestfwd without a DHCP client.
// twinroot.ip=ADDR/PREFIX,GATEWAY on the kernel command line overrides it;
// twinroot.ip=off leaves the network down.
func setupNetwork(s *system) (string, error) {
	addr, gw := "10.0.2.15/24", "10.0.2.2"
	if v, ok := s.kernelArg("twinroot.ip"); ok {
		if v == "off" {
			return "", nil
		}
		a, g, _ := strings.Cut(v, ",")
		addr, gw = a, g
	}
	if lo, err := netlink.LinkByName("lo"); err == nil {
		netlink.LinkSetUp(lo)
	}
	links, err := netlink.LinkList()
	if err != nil {
		return "", fmt.Errorf("list links: %w", err)
	}
	var link netlink.Link
	for _, l := range links {
		if l.Type() == "device" && l.Attrs().EncapType == "ether" {
			link = l
			break
		}
	}
	if link == nil {
		return "", nil
	}
	name := link.Attrs().Name
	a, err := netlink.ParseAddr(addr)
	if err != nil {
		return "", fmt.Errorf("twinroot.ip address %q: %w", addr, err)
	}
	if err := netlink.AddrAdd(link, a); err != nil {
		return "", fmt.Errorf("%s: add %s: %w", name, addr, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return "", fmt.Errorf("%s: up: %w", name, err)
	}
	if gw != "" {
		ip := net.ParseIP(gw)
		if ip == nil {
			return "", fmt.Errorf("twinroot.ip gateway %q is not an IP address", gw)
		}
		if err := netlink.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: ip}); err != nil {
			return "", fmt.Errorf("%s: default route via %s: %w", name, gw, err)
		}
	}
	if err := os.WriteFile("/etc/resolv.conf", []byte("nameserver 10.0.2.3\n"), 0o644); err != nil {
		return "", fmt.Errorf("write /etc/resolv.conf: %w", err)
	}
	return fmt.Sprintf("%s %s via %s", name, addr, gw), nil
}

// mountSlot mounts the running slot's image (the partition GRUB booted,
// labelled twinroot-<slot>) read-only on /run/twinroot/slot and binds its
// /usr over the initramfs's, so the updater finds what the image carries
// (trusted keys in /usr/lib/twinroot/trusted, bundled containers) where it
// would on a full system. A machine booted without such a partition (a
// direct kernel boot) goes on without it.
func mountSlot(slot string) (string, error) {
	if slot == "none" {
		return "", nil
	}
	label := "twinroot-" + slot
	dev, err := partitionByLabel("/sys/class/block", label)
	if err != nil || dev == "" {
		return "", err
	}
	dir := "/run/twinroot/slot"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if _, err := mount.Mount("/dev/"+dev, dir, "squashfs", "", unix.MS_RDONLY); err != nil {
		return "", fmt.Errorf("mount %s (%s): %w", dev, label, err)
	}
	msg := fmt.Sprintf("slot root %s (%s) on %s", dev, label, dir)
	if st, err := os.Stat(filepath.Join(dir, "usr")); err == nil && st.IsDir() {
		if _, err := mount.Mount(filepath.Join(dir, "usr"), "/usr", "", "", unix.MS_BIND); err != nil {
			return "", fmt.Errorf("bind %s/usr on /usr: %w", dir, err)
		}
		msg += ", /usr bound"
	}
	return msg, nil
}

// DataLabel is the GPT name of the data partition.
const DataLabel = "twinroot-data"

// mountData mounts the data partition (ext4, labelled DataLabel) read-write
// on dir, where the updater finds the device config and keeps its state
// (/data/twinroot/device.yaml, state_dir). Without one, the updater runs
// without a config and only finishes trial boots.
func mountData(classBlock, dir string) (string, error) {
	dev, err := partitionByLabel(classBlock, DataLabel)
	if err != nil {
		return "", err
	}
	if dev == "" {
		return fmt.Sprintf("no data partition (%s): nothing mounted on %s", DataLabel, dir), nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// An unclean power-off leaves the journal to replay; the kernel does
	// that at mount time.
	if _, err := mount.Mount("/dev/"+dev, dir, "ext4", "", unix.MS_NOATIME|unix.MS_NODEV); err != nil {
		return "", fmt.Errorf("mount %s (%s) on %s: %w", dev, DataLabel, dir, err)
	}
	return fmt.Sprintf("data partition %s on %s", dev, dir), nil
}

// partitionByLabel finds the block device whose GPT partition name is label.
func partitionByLabel(classBlock, label string) (string, error) {
	entries, err := os.ReadDir(classBlock)
	if err != nil {
		return "", fmt.Errorf("find partition %s: %w", label, err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(classBlock, e.Name(), "uevent"))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if l == "PARTNAME="+label {
				return e.Name(), nil
			}
		}
	}
	return "", nil
}
