// Package state owns the updater's state directory on the data partition
// (state_dir of device.yaml, /data/twinroot by default): what the updater
// remembers across boots and versions. It holds four kinds of file:
//
//	state.json     what the updater remembers (below)
//	journal.json   progress of the slot being written (format: package fetch)
//	slot-a.idx     the chunk index slot a was written from (format: package
//	slot-b.idx     chunk), so the next apply need not scan the running slot
//	latest.json    the last latest.json the channel served, judged again
//	               when a conditional GET answers "not modified"
//
// Each is replaced atomically. The journal and the slot indexes are hints:
// one that belongs to another disk or release is discarded, never trusted
// (every chunk copied or resumed is hashed against the signed index) and
// never an error. state.json is one JSON object:
//
//	{
//	  "highest_serial": 12,            // highest serial ever accepted (anti-rollback)
//	  "min_serial": 10,                // highest min_serial ever accepted (the floor)
//	  "bad_versions": ["1.3.0"],       // versions a trial failed on: never retried
//	  "latest_etag": "\"abc\"",        // ETag of the last latest.json, for conditional GETs
//	  "last_check": {"time": "...", "outcome": "up-to-date", "reason": "...",
//	                 "version": "1.2.0", "serial": 12},
//	  "failures": {                    // why the channel's version could not be taken
//	    "1.4.0": {"time": "...", "first": "...", "rounds": 3, "refused": false,
//	              "reason": "write slot b: ...: access denied (403 AccessDenied: ...) ..."}
//	  }
//	}
//
// last_check.outcome is up-to-date, update-available, refused (a rule of
// the manifest's: reason names it), or failed: latest.json could not be
// read at all (reason says why; version and serial are then empty).
// failures holds one entry per version, the last failure of each round
// that could not take it, whether a rule refused it (refused: true, the
// exit code 3 of the command) or fetching or writing it failed (exit code
// 1): when it happened last and first, in how many rounds, and why in one
// line. An entry goes when its version is armed, or when the channel
// offers another version; a refusal is logged only when its reason is new
// for the version, so a permanent error is reported once, not in a loop.
// (Before failures, a map "reported" of version to reason did that; a
// state file that has it is read as if it had not.)
//
// The ETag and the cached latest.json are kept only for a body whose
// signature a trusted key verified: a byte flipped on the wire, cached
// under the good ETag, would otherwise be judged again on every "not
// modified" until the channel changed.
//
// A missing file is the empty state of a new device.
package state
