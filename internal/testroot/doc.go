// Package testroot generates deterministic content for tests and
// benchmarks: root filesystems to build slot images from, and image-like
// byte streams to chunk.
//
// A root is described by a Spec: a seed, the vocabulary of its text and
// groups of Files, each of one Kind (random bytes like firmware and a
// kernel, program-like bytes like machine code, or text) with a size drawn
// per file. The same Spec writes the same files, byte for byte, on every
// machine and Go version (math/rand/v2's PCG is specified, not an
// implementation detail).
//
// Two roots are named:
//
//   - Delta, about 110 MB in fixed groups of files: the root package chunk's
//     TestDelta and package agent's TestDeltaApply measure what two images
//     differing by one file share. Their figures and thresholds were set on
//     exactly these bytes, which TestDeltaBytes pins.
//   - Sized, a root of a given number of bytes in the shares of a small OS
//     image, with a kernel and an initrd so updater build accepts it: what
//     bench/release builds and publishes.
//
// Mixed makes the byte streams that stand in for a filesystem image where a
// test chunks bytes in memory (packages chunk and fetch).
package testroot
