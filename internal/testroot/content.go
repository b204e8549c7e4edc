package testroot

import (
	"math/rand/v2"
	"strings"
)

// AppendRandom appends n incompressible bytes, eight from each draw of r;
// a tail of fewer than eight bytes stays zero.
func AppendRandom(b []byte, r *rand.Rand, n int) []byte {
	start := len(b)
	b = append(b, make([]byte, n)...)
	for i := start; i+8 <= start+n; i += 8 {
		v := r.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b
}

// AppendProgram appends n bytes like machine code: short runs drawn from a
// skewed alphabet, and copies of earlier runs (from anywhere in b), which
// xz compresses about 2:1.
func AppendProgram(b []byte, r *rand.Rand, n int) []byte {
	end := len(b) + n
	for len(b) < end {
		if len(b) > 64 && r.IntN(4) == 0 {
			start := len(b) - 1 - r.IntN(min(len(b)-1, 4096))
			b = append(b, b[start:start+min(8+r.IntN(24), len(b)-start)]...)
			continue
		}
		for range 4 + r.IntN(12) {
			b = append(b, byte(r.IntN(1+r.IntN(256))))
		}
	}
	return b[:end]
}

// A Vocabulary is what generated text is made of: words drawn at random,
// separated by spaces, and about one in twelve followed by LineEnd instead.
type Vocabulary struct {
	Words   []string
	LineEnd string
}

// Append appends n bytes of text.
func (v Vocabulary) Append(b []byte, r *rand.Rand, n int) []byte {
	end := len(b) + n
	for len(b) < end {
		b = append(b, v.Words[r.IntN(len(v.Words))]...)
		if r.IntN(12) == 0 {
			b = append(b, v.LineEnd...)
		} else {
			b = append(b, ' ')
		}
	}
	return b[:end]
}

// The vocabularies differ only because the tests that first used them did:
// each keeps the bytes its figures were measured on.
var (
	// Terms is twinroot's own words in lines: the text of Delta, and of
	// Mixed.
	Terms = Vocabulary{Words: strings.Fields(`the slot image kernel boot update signed chunk index
		device channel manifest version serial trusted key expires partition grub
		environment trial commit fallback health gate container volume data config`), LineEnd: "\n"}

	// Prose is common words in sentences: the text of package agent's
	// delta root.
	Prose = Vocabulary{Words: []string{"the", "system", "update", "slot", "kernel", "package", "config", "service", "data", "boot",
		"image", "file", "version", "network", "device", "release", "and", "of", "to", "is", "a", "for", "with"}, LineEnd: ".\n"}

	// Docs is the words of documentation and configuration files: the
	// text of Sized.
	Docs = Vocabulary{Words: []string{
		"the", "of", "and", "to", "in", "is", "for", "that", "with", "on", "as", "by",
		"system", "file", "option", "default", "value", "service", "network", "kernel",
		"device", "package", "config", "version", "update", "license", "copyright",
		"software", "without", "warranty", "including", "limited", "provided", "user",
		"root", "boot", "partition", "image", "slot", "release", "manifest", "signature",
		"#", "=", "true", "false", "yes", "no", "0", "1", "/usr/lib", "/etc", "/var/lib",
	}, LineEnd: "\n"}
)

// MixOptions say what Mixed makes.
type MixOptions struct {
	// Spread: each stretch holds 4 KiB plus up to Spread-1 bytes.
	Spread int
	// Programs adds program-like stretches (AppendProgram) to the random
	// bytes, text (Terms) and zeros; zeros make repeated chunks.
	Programs bool
}

// Mixed returns n deterministic bytes as in a filesystem image: stretches
// of random bytes, text and zeros, and program-like bytes with
// o.Programs, in random order.
func Mixed(seed uint64, n int, o MixOptions) []byte {
	r := rand.New(rand.NewPCG(seed, 0))
	// A byte a draw, unlike AppendRandom: the bytes the tests of packages
	// chunk and fetch were written against.
	random := func(b []byte, k int) []byte {
		for range k {
			b = append(b, byte(r.Uint32()))
		}
		return b
	}
	text := func(b []byte, k int) []byte { return Terms.Append(b, r, k) }
	program := func(b []byte, k int) []byte { return AppendProgram(b, r, k) }
	zeros := func(b []byte, k int) []byte { return append(b, make([]byte, k)...) }
	stretches := []func([]byte, int) []byte{random, text}
	if o.Programs {
		stretches = append(stretches, program)
	}
	stretches = append(stretches, zeros)

	b := make([]byte, 0, n)
	for len(b) < n {
		k := min(n-len(b), 4096+r.IntN(o.Spread))
		b = stretches[r.IntN(len(stretches))](b, k)
	}
	return b
}
