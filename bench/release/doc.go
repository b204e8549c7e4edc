// Command release is `make bench` for the release pipeline. On a
// deterministic generated root (about 200 MiB: random blobs, program-like
// binaries, text, thousands of small configuration files) it measures:
//
//   - build: `updater build` beside mksquashfs alone with the same flags on
//     the same root, as a ratio of times, and checks that repeated builds
//     are byte for byte the same;
//   - the build output: slot.img beside slot.img.zst, and the chunk count;
//   - publish: `updater publish` beside `aws s3 cp` (Debian's awscli) of the
//     same slot.img.zst to the same S3 server (MinIO, versitygw, started on
//     127.0.0.1 by package s3test), interleaved runs, medians, as a ratio
//     of throughputs; then `updater verify` of what was published.
//
// Figures are ratios measured in one run on one machine: absolute seconds
// mean little on a shared, noisy machine. Nothing here is a time limit; the
// program exits non-zero only when a step fails.
//
//	go run ./bench/release            # aligned table on stdout, progress on stderr
//	go run ./bench/release -o json    # the same figures for machines
package main
