// Command apply is `make bench` for the device side. In one run, on one
// loop device (an offset-free losetup of a sparse disk file, detached on
// exit; RAUC's slots add two offset ones) and one MinIO on 127.0.0.1, it
// measures, for each image size of -sizes (512 MiB and 2 GiB). Every loop
// device is attached with --direct-io=on, so what is written to it goes to
// the disk under the file, not to the host's page cache, as on a device's
// own disk. A buffered loop device wrote the file's dirty pages back at
// each sync of apply's journal, with the next writes queued behind it
// (3.92 s at 2 GiB, 3.25 s without those syncs), while dd's bytes were
// written back once, at its end: costs no real disk has.
//
// Per size it measures:
//
//   - `updater apply` of a full image, as the first apply after install:
//     slot A holds v1, a release of other random data as large as -size
//     (so nothing is reused), installed by installer install, and the
//     state directory holds slot A's index as installer install seeds it,
//     so apply does not scan slot A. The image is an uncompressed squashfs
//     of random data (zstd on the wire then stores most frames raw, which
//     is the worst case for the GET and the write). Between runs slot B's
//     boot state is reset and the state directory remade;
//   - each stage alone on the same bytes: a GET of slot.img.zst to nowhere
//     (Go, the updater's S3 client), zstd decompression (Go, the updater's
//     decoder), SHA-256 of slot.img (Go, the updater's hash), and
//     `dd oflag=direct` of slot.img into slot B's byte range of the device.
//     A stage's CPU seconds are its processes' (wait4's rusage; the GET's
//     include MinIO's, read from /proc, since MinIO shares the same cores)
//     and the kernel threads' meanwhile (the loop device's worker copies
//     every byte written to it), never other processes';
//   - the limit max(slowest stage, summed stage CPU seconds / cores), and
//     apply's wall time over it (target 1.1 or less), apply's wall time
//     being the whole process's (start, check, index, fetch engine, arm);
//   - the four stages started at once as independent processes: nothing
//     waits on anything, so their wall time over the limit is what this
//     machine gives perfectly overlapping work, a floor for apply's ratio
//     (two vCPUs shared with MinIO and the loop device's worker);
//   - apply's peak RSS (ru_maxrss, the largest run; target under 32 MiB at
//     every size). Linux keeps in a child's ru_maxrss the high-water RSS of
//     the process that started it, and Go starts children on the parent's
//     own memory, so updater apply is started by a small process of its own
//     (apply-bench -stage run): as a child of the bench it reported the
//     bench's 30-odd MiB, the same at every size.
//
// On the -size image it also measures:
//
//   - the same apply when the state directory lacks slot A's index: apply
//     then chunks slot A first (its scan);
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
//   - bytes on the wire of a no-change `updater check` (its conditional GET
//     answered 304), counted by a TCP proxy on 127.0.0.1 in front of MinIO.
//
// Every measure is a median of -runs interleaved runs (the order rotates
// each run), each taken once the machine has been quiet for a second
// (other processes under 15% of it; at most -quiet of waiting): QEMU tests
// and image builds beside the bench take a core for minutes, and slow an
// apply, which needs both cores, more than a stage alone. A measure during
// which other processes took more than 15% of the machine is taken again,
// at most twice; the report counts those disturbed all the same. Nothing here is a time limit; the
// program exits non-zero only when a step fails.
//
//	go run ./bench/apply                  # aligned tables on stdout, progress on stderr
//	go run ./bench/apply -o json          # the same figures for machines
//	go run ./bench/apply -sizes 512       # skip the 2 GiB image
package main
