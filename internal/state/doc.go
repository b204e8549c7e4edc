// Package state is the updater's memory on the data partition, kept across
// boots and versions in one JSON file, StateDir/state.json, replaced
// atomically:
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
