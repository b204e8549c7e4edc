// Package source reads and writes release stores: the objects `updater
// publish` uploads and every device fetches.
//
// # URLs and keys
//
// A store is named by a URL; keys are slash-separated paths relative to it:
//
//	s3://bucket/prefix      any S3-compatible endpoint (aws-sdk-go-v2)
//	https://host/prefix     static hosting or a CDN, read-only (http:// too,
//	                        for mirrors on a trusted network: every object a
//	                        device uses is covered by the signed manifest)
//	file:///path            a directory: air-gapped or USB media
//
// so key "stable/1.2.0/chunks.idx" of s3://rel/fleet is the object
// "fleet/stable/1.2.0/chunks.idx" in bucket "rel". Keys with empty, "." or
// ".." segments, a leading slash, a backslash or NUL are refused, so a key
// built from store data never leaves the prefix. Package storeurl holds
// these rules, and device.yaml is checked by them too.
//
// # Reading (Source)
//
// Get is conditional when given an ETag (If-None-Match): an unchanged
// object gives ErrNotModified and no body crosses the network, which is
// what makes polling latest.json on a timer cheap. GetRange reads one byte
// range (one zstd frame of the image) and yields exactly the bytes asked
// for: a short or clipped answer is ErrRange or io.ErrUnexpectedEOF, never a
// silently short chunk. An https server that ignores Range is refused
// rather than downloading the whole image per chunk. ETags are opaque
// strings, quoted as servers send them.
//
// Errors name what a caller decides on: ErrNotFound (404), ErrDenied (401,
// 403: wrong credentials, or a key they may not read; S3 answers 403 for a
// missing key to a caller that may not list the bucket), ErrNoHost (the
// host name does not resolve), ErrRange (a range past the end of the
// object, told by the server's 416 or by its Content-Range size). An
// answer to a range whose length is not the range's, while the object is
// long enough, is broken on its way and wraps none of them: worth another
// try. Options.MaxAttempts bounds the S3 client's own retries; the device
// sets 1 and retries with its own policy (package fetch), so one failure
// is one request and one policy bounds them all.
//
// # Writing (Store: s3 and file)
//
// Every write is create-only, so a published version is never overwritten
// (a lesson of the spec): PutIfAbsent and Upload return ErrExists and leave
// the stored object as it was. Replace is a compare-and-swap on the ETag,
// for latest.json, the one object a new release changes: a publisher that
// read an older latest.json gets ErrChanged instead of clobbering a
// release published meanwhile.
//
// On S3 each write first asks for the key (HEAD), to refuse before any
// byte is sent, then writes with the condition on the server: PutObject
// and CompleteMultipartUpload with If-None-Match: *, PutObject with
// If-Match for Replace. The server's answer (412) is the guarantee; the
// HEAD alone would leave a race between two publishers. MinIO and
// versitygw (v1.8.0) both honour all three conditions (tested in
// TestServerHonoursConditions); on a server that ignores them the
// guarantee falls back to that check-then-put. Upload sends parts in
// parallel, at least 5 MiB each and at most 10,000 of them, and aborts the
// multipart upload on any failure so no parts are left behind.
//
// The S3 client uses path-style addressing (every S3-compatible server
// serves it, DNS needs nothing per bucket) and computes and validates
// checksums only when an operation requires them: MinIO, versitygw and older
// Ceph choke on the CRC trailers the SDK sends by default. Integrity comes
// from the signed manifest's SHA-256 of every chunk and of the image.
// Credentials: Options, else the usual AWS chain (AWS_ACCESS_KEY_ID,
// AWS_PROFILE, shared config files, ...); Options.Anonymous for a
// public-read bucket.
//
// # file:// layout
//
// Objects are files at <dir>/<key>. A write goes to a temporary
// ".twinroot-tmp-*" file beside its target (never listed), is synced, and
// is then renamed into place with RENAME_NOREPLACE, atomic and create-only
// on ext4 and on the FAT and exFAT of USB sticks alike (a hard link where
// the kernel lacks it). Replace checks the ETag then renames over the old
// file: one publisher per directory is assumed. An ETag is a hash of the
// content for files up to 1 MiB (manifests: FAT's 2 s mtime cannot tell
// two quick rewrites apart) and size plus mtime for larger ones (hashing
// a GiB image on every Stat is too slow). Upload copies sequentially.
package source
