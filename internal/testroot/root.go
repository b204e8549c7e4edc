package testroot

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// A Kind is what a generated file holds.
type Kind int

const (
	Random  Kind = iota // incompressible, like firmware or a kernel (AppendRandom)
	Program             // like machine code, about 2:1 under xz (AppendProgram)
	Text                // lines of words, like documentation and configuration
)

// Files is a group of generated files. A file's size, Min plus up to
// Spread-1 bytes, is drawn before its content; with Spread zero it is Min.
type Files struct {
	// Name is the path of the group's i-th file, relative to the root.
	Name func(i int) string
	Kind Kind
	// ProgramEvery, when set, makes every file whose index it divides
	// Program instead of Kind.
	ProgramEvery int
	// Count is how many files; when it is zero the group has files until
	// they hold Bytes in all, the last one cut short.
	Count int
	Bytes int64
	Min   int64
	// Spread is how much a file's size varies above Min.
	Spread int64
}

// Numbered returns a Files.Name that formats the index into pattern.
func Numbered(pattern string) func(int) string {
	return func(i int) string { return fmt.Sprintf(pattern, i) }
}

// Spec says what a generated root holds.
type Spec struct {
	Seed uint64
	// Words is the vocabulary of Text files; the zero value means Terms.
	Words Vocabulary
	// Files are written group after group, in order, from one stream of
	// random numbers: a change to one group changes those after it.
	Files []Files
}

// Stats counts what Write wrote.
type Stats struct {
	Files int
	Bytes int64
}

// WithBoot returns s with /boot/vmlinuz (kernel random bytes) and
// /boot/initrd.img (initrd program-like bytes) written first, as updater
// build requires of a root.
func (s Spec) WithBoot(kernel, initrd int64) Spec {
	s.Files = append([]Files{
		{Name: func(int) string { return "boot/vmlinuz" }, Kind: Random, Count: 1, Min: kernel},
		{Name: func(int) string { return "boot/initrd.img" }, Kind: Program, Count: 1, Min: initrd},
	}, s.Files...)
	return s
}

// Write writes the root into dir, which it creates.
func (s Spec) Write(dir string) (Stats, error) {
	r := rand.New(rand.NewPCG(s.Seed, 1))
	words := s.Words
	if words.Words == nil {
		words = Terms
	}
	var st Stats
	for _, g := range s.Files {
		for i, left := 0, g.Bytes; i < g.Count || g.Count == 0 && left > 0; i++ {
			n := g.Min
			if g.Spread > 0 {
				n += r.Int64N(g.Spread)
			}
			if g.Count == 0 {
				n = min(n, left)
				left -= n
			}
			kind := g.Kind
			if g.ProgramEvery > 0 && i%g.ProgramEvery == 0 {
				kind = Program
			}
			var b []byte
			switch kind {
			case Random:
				b = AppendRandom(nil, r, int(n))
			case Program:
				b = AppendProgram(make([]byte, 0, n), r, int(n))
			default:
				b = words.Append(make([]byte, 0, n+16), r, int(n))
			}
			path := filepath.Join(dir, g.Name(i))
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return st, fmt.Errorf("generate root: %w", err)
			}
			if err := os.WriteFile(path, b, 0o644); err != nil {
				return st, fmt.Errorf("generate root: %w", err)
			}
			st.Files++
			st.Bytes += n
		}
	}
	return st, nil
}

// Delta is the root of the delta measurements, about 110 MB: 21
// incompressible blobs, 60 program-like binaries, 250 text documents and
// 5000 small configuration files (a third program-like) in 50 directories,
// which squashfs packs into fragments. Package chunk's TestDelta and
// package agent's TestDeltaApply set their thresholds on these bytes.
func Delta(seed uint64) Spec {
	return Spec{Seed: seed, Files: []Files{
		{Name: Numbered("usr/lib/firmware/blob%02d.bin"), Kind: Random, Count: 21, Min: 512 << 10, Spread: 2560 << 10},
		{Name: Numbered("usr/bin/prog%02d"), Kind: Program, Count: 60, Min: 64 << 10, Spread: 768 << 10},
		{Name: Numbered("usr/share/doc/pkg%03d/README"), Kind: Text, Count: 250, Min: 4 << 10, Spread: 192 << 10},
		{
			Name: func(i int) string { return fmt.Sprintf("etc/conf.d/d%02d/f%04d.conf", i/100, i) },
			Kind: Text, ProgramEvery: 3, Count: 5000, Min: 64, Spread: 8 << 10,
		},
	}}
}

// Shares of a Sized root, in percent of its size. They follow a small OS
// image: incompressible blobs (firmware, the kernel), program-like
// binaries, text, and a long tail of small configuration files.
const (
	shareRandom  = 30
	shareProgram = 35
	shareText    = 25
	// The rest, in files of 64 B to 8 KiB.
)

// Sized is a root of exactly size bytes in the shares of a small OS image,
// in Docs words, with /boot/vmlinuz and /boot/initrd.img (up to 8 MiB
// each, counted in the random and program shares) so updater build
// accepts it.
func Sized(seed uint64, size int64) Spec {
	random, program, text := size*shareRandom/100, size*shareProgram/100, size*shareText/100
	small := size - random - program - text
	kernel := min(random/4, 8<<20)
	s := Spec{Seed: seed, Words: Docs, Files: []Files{
		{Name: func(i int) string { return fmt.Sprintf("usr/lib/firmware/vendor%d/blob%03d.bin", i%7, i) },
			Kind: Random, Bytes: random - kernel, Min: 256 << 10, Spread: 3 << 20},
		{Name: func(i int) string {
			if i%3 == 0 {
				return fmt.Sprintf("usr/lib/x86_64-linux-gnu/lib%03d.so.1", i)
			}
			return fmt.Sprintf("usr/bin/prog%03d", i)
		}, Kind: Program, Bytes: program - kernel, Min: 16 << 10, Spread: 1 << 20},
		{Name: Numbered("usr/share/doc/pkg%03d/README"), Kind: Text, Bytes: text, Min: 2 << 10, Spread: 160 << 10},
		{Name: func(i int) string { return fmt.Sprintf("etc/conf.d/d%02d/f%05d.conf", i/200, i) },
			Kind: Text, ProgramEvery: 4, Bytes: small, Min: 64, Spread: 8 << 10},
	}}
	return s.WithBoot(kernel, kernel)
}
