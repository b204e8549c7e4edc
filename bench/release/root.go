package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// RootStats describes a generated root.
type RootStats struct {
	Seed  uint64 `json:"seed"`
	Files int    `json:"files"`
	Bytes int64  `json:"bytes"`
}

// Shares of a generated root, in percent of its size. They follow a small
// OS image: incompressible blobs (firmware, the kernel), program-like
// binaries that compress about 2:1, text, and a long tail of small
// configuration files, which is what squashfs packs into fragments.
const (
	shareRandom  = 30
	shareProgram = 35
	shareText    = 25
	// The rest, in files of 64 B to 8 KiB.
)

// GenerateRoot writes a deterministic root filesystem of about size bytes
// into dir: the same seed and size give the same files, byte for byte. It
// holds /boot/vmlinuz and /boot/initrd.img, so updater build accepts it.
func GenerateRoot(dir string, size int64, seed uint64) (RootStats, error) {
	g := &generator{dir: dir, r: rand.New(rand.NewPCG(seed, 0x7477696e726f6f74)), st: RootStats{Seed: seed}}
	random, program, text := size*shareRandom/100, size*shareProgram/100, size*shareText/100
	small := size - random - program - text

	// The kernel and initrd count towards the random share.
	kernel := min(random/4, 8<<20)
	g.write("boot/vmlinuz", g.random(int(kernel)))
	g.write("boot/initrd.img", g.program(int(kernel)))
	for i, left := 0, random-kernel; left > 0; i++ {
		n := min(left, 256<<10+g.r.Int64N(3<<20))
		g.write(fmt.Sprintf("usr/lib/firmware/vendor%d/blob%03d.bin", i%7, i), g.random(int(n)))
		left -= n
	}
	for i, left := 0, program-kernel; left > 0; i++ {
		n := min(left, 16<<10+g.r.Int64N(1<<20))
		name := fmt.Sprintf("usr/bin/prog%03d", i)
		if i%3 == 0 {
			name = fmt.Sprintf("usr/lib/x86_64-linux-gnu/lib%03d.so.1", i)
		}
		g.write(name, g.program(int(n)))
		left -= n
	}
	for i, left := 0, text; left > 0; i++ {
		n := min(left, 2<<10+g.r.Int64N(160<<10))
		g.write(fmt.Sprintf("usr/share/doc/pkg%03d/README", i), g.text(int(n)))
		left -= n
	}
	for i, left := 0, small; left > 0; i++ {
		n := min(left, 64+g.r.Int64N(8<<10))
		name := fmt.Sprintf("etc/conf.d/d%02d/f%05d.conf", i/200, i)
		if i%4 == 0 {
			g.write(name, g.program(int(n)))
		} else {
			g.write(name, g.text(int(n)))
		}
		left -= n
	}
	return g.st, g.err
}

type generator struct {
	dir string
	r   *rand.Rand
	st  RootStats
	err error
}

func (g *generator) write(name string, data []byte) {
	if g.err != nil {
		return
	}
	path := filepath.Join(g.dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		g.err = fmt.Errorf("generate root: %w", err)
		return
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		g.err = fmt.Errorf("generate root: %w", err)
		return
	}
	g.st.Files++
	g.st.Bytes += int64(len(data))
}

func (g *generator) random(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := g.r.Uint64()
		for k := 0; k < 8 && i+k < n; k++ {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b
}

// program makes bytes like machine code: short runs from a skewed alphabet
// and back references, about 2:1 under xz.
func (g *generator) program(n int) []byte {
	b := make([]byte, 0, n+64)
	for len(b) < n {
		if len(b) > 64 && g.r.IntN(4) == 0 {
			start := len(b) - 1 - g.r.IntN(min(len(b)-1, 4096))
			b = append(b, b[start:start+min(8+g.r.IntN(24), len(b)-start)]...)
			continue
		}
		for range 4 + g.r.IntN(12) {
			b = append(b, byte(g.r.IntN(1+g.r.IntN(256))))
		}
	}
	return b[:n]
}

var words = []string{
	"the", "of", "and", "to", "in", "is", "for", "that", "with", "on", "as", "by",
	"system", "file", "option", "default", "value", "service", "network", "kernel",
	"device", "package", "config", "version", "update", "license", "copyright",
	"software", "without", "warranty", "including", "limited", "provided", "user",
	"root", "boot", "partition", "image", "slot", "release", "manifest", "signature",
	"#", "=", "true", "false", "yes", "no", "0", "1", "/usr/lib", "/etc", "/var/lib",
}

// text makes lines of words, like documentation and configuration.
func (g *generator) text(n int) []byte {
	b := make([]byte, 0, n+32)
	for len(b) < n {
		b = append(b, words[g.r.IntN(len(words))]...)
		if g.r.IntN(12) == 0 {
			b = append(b, '\n')
		} else {
			b = append(b, ' ')
		}
	}
	return b[:n]
}
