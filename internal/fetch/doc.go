// Package fetch fills the inactive slot with a release streamed from its
// store: the delta apply engine of `updater apply`.
//
// # What is fetched
//
// The chunk index (package chunk) names every chunk of the new image by its
// SHA-256. Apply first cuts the running slot into chunks with the index's
// own parameters (chunk.Scan): a chunk found there is copied locally, and a
// chunk that appears earlier in the new image is copied from where it was
// already written in the target. When the device kept the index the
// running slot was written from (Options.RunningIndex, same parameters),
// its entries stand for the scan, which saves reading and chunking the
// whole running slot; a chunk copied is hashed all the same, and one that
// is not where it was expected is fetched instead. Only the rest is
// fetched, with Range requests for its zstd frames; neighbouring frames are coalesced into one
// request across gaps of at most MaxGap compressed bytes (the gap is read
// and thrown away: cheaper than another round trip), and no request asks
// for more than MaxRequest bytes.
//
// # One streaming pass
//
// Three stages run at once, linked by bounded channels: a fetcher reads the
// response bodies frame by frame, in chunk order; workers (one per CPU and
// one more) decompress and hash each frame against the index, or read and
// hash a local chunk; a writer commits the chunks in order. Chunks move
// between the stages in batches of four (a hand-over per chunk had the
// stages wait on each other's wake-ups). The bytes are copied once on
// their way: the fetcher reads each frame into a frame ring (2 MiB), and
// a worker decompresses it straight into the chunk's place in the slot's
// ring (stream.Sequential, 5 MiB), which the fetcher reserved for it at
// the chunk's disk offset; the frame's room is given back when its chunk
// is committed. Both rings are mapped outside the Go heap and grow only
// for an index whose chunks are larger than 256 KiB, so memory stays flat
// whatever the image size, and the garbage collector's pacing never sees
// them; no stage holds a whole object. A chunk whose bytes do not hash to
// the index is never committed, so never written. The scan of the running
// slot comes before the pass (it decides what to fetch); the one request
// at a time is streamed.
//
// The ring writes what is committed in the background, front to back, in
// writes of 1 to 2 MiB (whatever has piled up while the last one ran),
// and a chunk's room is reused only once the write holding its bytes has
// returned. A target that is a file or a block device (it has a Name) is
// written through a descriptor of its own opened with O_DIRECT, so the
// bytes reach the disk without a copy in the page cache; any other target
// with its WriteAt. A fourth goroutine, the syncer, records progress
// beside the writer, so neither a sync nor a flush stalls the pipeline:
// every SyncEvery bytes (or 2 s) the writer asks for a record, and the
// syncer reads how far the ring's writes have got, syncs the target and
// records the chunks that end there. After the last chunk the writer
// flushes the ring (its last, partial block included) and the syncer
// records every chunk.
//
// # What is verified
//
// Every chunk is hashed against the index before it is written, and the
// chunks of an index tile the image (package chunk checks this when it
// parses one), so a slot this run wrote whole holds exactly the image the
// index describes; the manifest signs the index's SHA-256. The chunks an
// earlier run wrote (a resumed apply) are read back from the disk and
// checked against the index once more before the slot is armed: the
// journal says they were written and synced, not that the disk kept them.
// Options.ReadBack reads the whole slot back the same way, for a disk not
// trusted to keep what it acknowledged; it costs a second pass over the
// disk and the hash.
//
// # Errors and retries
//
// A transient error (a time-out, a 5xx answer, a reset connection, a
// truncated body, an answer of the wrong length, a request that receives
// no byte for StallTimeout, or fewer than MinRate bytes a second over a
// StallTimeout of waiting) is retried after a back-off chosen by
// Options.Retry, and the request resumes at the first chunk not yet
// received. The rate floor is what catches a connection that drips: a
// byte every second never trips a time-out on each read, yet would take
// days to bring a frame. Only time spent waiting for the network counts,
// never time the pipeline spends blocked on the disk. A frame that fails
// its hash is fetched once more on its own (a byte flipped on the wire);
// if it fails again the object itself is corrupt, and Apply returns an
// error wrapping chunk.ErrCorrupt that names the chunk and its offsets. A
// missing object (source.ErrNotFound), a range outside it
// (source.ErrRange), a refusal of the credentials (source.ErrDenied), a
// host name that does not resolve (source.ErrNoHost) and any other client
// error (4xx) from an S3 store are permanent and returned at once. Retry
// bounds the tries in a row that bring no progress; each frame received
// starts the count again.
//
// Get reads a small object whole (latest.json, chunks.idx) under the same
// Guard: watched the same way, retried per the same policy, and judged by
// its caller's check, with a body the check refuses fetched once more
// (and, for a conditional GET, without its ETag), so one call makes at
// most one request more than the policy's tries. The device's S3 client
// makes one request per call (source.Options.MaxAttempts), so these
// bounds are the requests the store sees.
//
// # Journal
//
// Progress is recorded so that a power cut or a lost connection resumes at
// the last verified chunk instead of starting over. A journal State holds
// the SHA-256 of the index's bytes (the identity of the release being
// written: the manifest signs the same sum), the slot's offset on the disk
// (so a record for slot A is never taken for slot B), the number of leading
// chunks that were verified, written and synced, the raw offset where they
// end, and the image size. The order of writes makes a record true whenever
// it is read: the target is synced before the journal records the chunks
// written, and before the first byte of a new release is written the
// journal is reset to that release with zero chunks. On start, a journal
// naming the same index and offset resumes after its chunks (they are read
// back and checked after the last chunk); any other journal starts over. A
// chunk that reads back different from the index resets the journal and
// returns ErrSlotMismatch. Whoever writes the slot by other means (a local apply)
// resets the journal first.
//
// FileJournal stores a State on the data partition as one JSON object:
//
//	{"format":1,"index":"<64 hex digits>","target":1182793728,"chunks":1234,"offset":98765432,"size":134217728}
//
// format is 1; index is the lowercase hex SHA-256 of chunks.idx; target is
// the byte offset of the slot on its disk (Options.TargetOffset); chunks is
// the count of leading chunks done, offset the raw bytes they cover (0 with
// chunks 0) and size the raw image size (for progress reports). Unknown
// fields are refused. A Save writes a temporary file beside the journal,
// syncs it, renames it over the journal and syncs the directory, so a power
// cut leaves the old record or the new one, never a torn one. A journal that
// cannot be parsed (ErrBadJournal) makes Apply start over: that costs only
// time, as every byte is verified in the end.
package fetch
