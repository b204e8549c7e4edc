// Command delta is `make bench` for the delta of an update: the bytes a
// device fetches to go from one real Debian 13 root to another, beside
// casync's content-defined chunks and beside the ideal.
//
// Two updates of the running root v1 (the cached Debian base of
// image/examples/debian with its openssl installed again at the same
// version, so that dpkg's first rewrite of its database is not taken for a
// change):
//
//   - openssl: the trixie-security update of openssl 3.5.9 to 3.5.10
//     (libssl3t64, openssl, openssl-provider-legacy);
//   - mixed: the trixie-security updates of krb5, libzstd1 and shadow (8
//     packages), less and jq added (4 packages), and an operator's change
//     of the configuration (config.sh).
//
// Packages are pinned by SHA-256 and installed by dpkg in a chroot
// (dpkg.sh, which leaves the root as lean as the base). Each root is built
// once and cached under -cache (build/delta/roots), and so is each slot
// image (build/delta/images, image.Build with xz as updater build makes it,
// about a minute each; the key is the root, version, key and mksquashfs's
// version, not image.Build's flags: after changing those, run with
// -rebuild-images); with both cached a run takes under a minute.
//
// For each update it prints: the new image and its chunks; what twinroot
// fetches (fetch.Apply of the new release from a file:// store into a
// sparse file, with the old image as the running slot and its index as the
// one the device kept: FetchedCompressed plus the index), with the default
// coalescing gap and without coalescing (the difference is the gap bytes
// read and thrown away); casync's delta (casync make of both images into
// one store: the new chunk files plus the new .caibx); the ideal (the
// changed and added regular files compressed alone with xz -6, summed);
// and the ratios. -gaps 16,64 applies again with those MaxGap values (KiB),
// to weigh the bytes a gap costs against the requests it saves.
//
//	go run ./bench/delta            # table on stdout, progress on stderr
//	go run ./bench/delta -o json    # the same figures for machines
package main
