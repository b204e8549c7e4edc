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
//	  "reported": {"1.4.0": "..."},    // permanent errors already reported once, by version
//	  "last_check": {"time": "...", "outcome": "up-to-date", "reason": "...",
//	                 "version": "1.2.0", "serial": 12}
//	}
//
// A missing file is the empty state of a new device.
package state
