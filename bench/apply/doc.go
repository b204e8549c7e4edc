// Command apply is `make bench` for the device side. In one run, on one
// loop device (an offset-free losetup of a sparse disk file, detached on
// exit; RAUC's slots add two offset ones) and one MinIO on 127.0.0.1, it
// measures:
//
//   - `updater apply` of a full image: slot A holds a different release, so
//     no chunk is reused and every byte comes from the store. The image is
//     an uncompressed squashfs of random data (zstd on the wire then stores
//     most frames raw, which is the worst case for the GET and the write).
//     Between runs slot B's boot state is reset and the state directory
//     (journal) removed;
//   - each stage alone on the same bytes: a GET of slot.img.zst to nowhere
//     (Go, the updater's S3 client), zstd decompression (Go, the updater's
//     decoder), SHA-256 of slot.img (Go, the updater's hash), and
//     `dd oflag=direct` of slot.img into slot B's byte range of the device.
//     Each stage's CPU seconds come from wait4's rusage; the GET's include
//     MinIO's (read from /proc), since MinIO shares the same cores;
//   - the limit max(slowest stage, summed stage CPU seconds / cores), and
//     apply's wall time over it (target 1.1 or less);
//   - apply against the shell pipeline
//     `aws s3 cp - | zstd -d | tee >(sha256sum) | dd oflag=direct`;
//   - apply against RAUC 1.8 (Debian's rauc and rauc-service): `rauc
//     install` of a plain bundle of the same slot.img, signed with a
//     self-signed certificate (openssl), once from a local file (its
//     download not timed) and once from a presigned MinIO URL (Debian's
//     RAUC streams no bundle: it downloads the whole bundle to a file,
//     then installs it). `rauc service` runs on a private system bus
//     (dbus-daemon on a socket in the work directory) with bootloader=noop,
//     slot A booted, and two raw slots on offset loop devices over slots A
//     and B of the same disk file, so RAUC writes the bytes apply writes.
//     Its CPU seconds include the service's (and MinIO's over http).
//     RAUC's verity format needs device-mapper, which this kernel lacks;
//   - apply's peak RSS (wait4's ru_maxrss) for each of -sizes;
//   - bytes on the wire of a no-change `updater check` (its conditional GET
//     answered 304), counted by a TCP proxy on 127.0.0.1 in front of MinIO.
//
// Every measure is a median of -runs interleaved runs (the order rotates
// each run). Nothing here is a time limit; the program exits non-zero only
// when a step fails.
//
//	go run ./bench/apply                  # aligned table on stdout, progress on stderr
//	go run ./bench/apply -o json          # the same figures for machines
//	go run ./bench/apply -sizes 512       # skip the 2 GiB peak-RSS image
package main
