// Package release owns the build output directory of `updater build` and
// the release as a whole: building it from a root, and (in later steps)
// publishing it to a store and verifying what a store serves.
//
// # Build output directory
//
//	slot.img       the raw slot image (squashfs), what `installer install` writes
//	slot.img.zst   the same bytes as one zstd frame per content-defined chunk
//	chunks.idx     the chunk index (format in package chunk)
//	manifest.json  the bare manifest (unsigned: no channel, no expiry), or
//	               after `updater sign` the signed envelope (package manifest)
//
// Every file is reproducible: the same root, keys, version and serial give
// the same bytes, so two builds of one commit can be compared byte for byte.
package release
