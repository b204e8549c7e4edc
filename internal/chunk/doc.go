// Package chunk cuts a slot image into content-defined chunks, compresses
// each chunk into its own zstd frame, and owns the chunk index that says
// where every chunk lies in the raw image and in the compressed object.
//
// # Chunks
//
// Chunk boundaries come from a Rabin fingerprint over a sliding 64-byte
// window (github.com/restic/chunker): a chunk ends where the low AverageBits
// bits of the fingerprint are zero, but never before MinSize bytes and always
// at MaxSize bytes. Because a boundary depends only on the 64 bytes before it,
// an insertion or a deletion in a squashfs image moves the boundaries near it
// and no others, so two images that differ by one file share nearly all their
// chunks even when everything after the change has shifted (fixed-size chunks
// would all change). The polynomial is the constant Polynomial, chosen once
// (irreducible, degree 53) and never changed, so the same image gives the same
// chunks in every build; the parameters are recorded in the index, and a
// device that chunks its running slot uses those recorded there.
//
// With CutXZ (DefaultParams) a chunk also ends before an xz stream header
// (the bytes FD 37 7A 58 5A 00): at the first one at least MinSize and at
// most MaxSize bytes after the chunk's start; only where none lies there
// does the fingerprint decide. mksquashfs compresses every 128 KiB data
// block, fragment block and 8 KiB metadata block of an xz image into an
// xz stream of its own, so these chunks hold whole squashfs blocks: a file
// that changes changes the chunks of its own blocks, where fingerprint
// cuts fall anywhere in a block and pull the unchanged blocks around a
// changed one into the delta (on real Debian updates that cost 1.4 to 2.1
// times the bytes, and more than casync's chunks; see DefaultParams).
// Blocks shorter than MinSize share a chunk with the blocks after them; a
// block of MinSize to MaxSize-MinSize bytes (every squashfs block of
// MinSize or more) always ends a chunk, so the cuts of two images agree
// again one such block after a change. Stretches without a header
// (an uncompressed image, or data squashfs stores raw because xz did not
// shrink it) are cut by the fingerprint as before.
//
// # Compressed object (slot.img.zst)
//
// The object is one zstd frame per chunk, in chunk order, concatenated with
// nothing between them; as a whole it is an ordinary zstd stream that
// `zstd -d` turns back into the raw image. Any chunk can be fetched alone by
// a Range request for its compressed offset and length and decompressed on
// its own. Frames are made with fixed encoder options (level SpeedDefault,
// content size and checksum in every frame, no dictionary) by EncodeAll,
// whose output does not depend on how many chunks are compressed at once, so
// the same image gives the same object bytes with the same
// github.com/klauspost/compress version (pinned in go.mod).
//
// # Index (chunks.idx)
//
// A header of 96 bytes followed by one 56-byte entry per chunk. All integers
// are little-endian and unsigned.
//
//	offset size  header field
//	     0    8  magic "TWRINDEX"
//	     8    4  format version, 1
//	    12    4  flags: bit 0 is CutXZ (a reader refuses any other bit)
//	    16    8  chunker polynomial (Polynomial in this version)
//	    24    4  minimum chunk size in bytes
//	    28    4  maximum chunk size in bytes
//	    32    4  average bits: a cut where the fingerprint's low bits are zero
//	    36    4  reserved, 0
//	    40    8  raw image size in bytes
//	    48    8  compressed object size in bytes
//	    56    8  chunk count
//	    64   32  SHA-256 of the whole raw image
//
//	offset size  entry field (entry i starts at 96 + 56*i)
//	     0    8  raw offset: where the chunk starts in the raw image
//	     8    8  compressed offset: where its frame starts in the object
//	    16    4  raw length
//	    20    4  compressed length (of the frame)
//	    24   32  SHA-256 of the chunk's raw bytes
//
// The file is exactly 96 + 56*count bytes. ParseIndex refuses an index whose
// chunks do not tile both the raw image and the object, in order, from
// offset 0 to the sizes in the header with no gap or overlap; a chunk shorter
// than the minimum (except the last) or longer than the maximum; more than
// MaxChunks chunks; parameters outside the limits below; and trailing or
// missing bytes. The index carries no checksum of its own: the signed
// manifest names its SHA-256.
package chunk
