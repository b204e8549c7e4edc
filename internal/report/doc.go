// Package report owns what a device tells its fleet's operators, with no
// server: one small JSON object per device and release in the store,
// written with keys that may only put objects, and never in the way of an
// update (a report that cannot be written is logged and dropped).
//
// # Object
//
// A device writes, at each event of a release, its one object for that
// release, over the last:
//
//	<report prefix>/reports/<channel>/<version>/<device id>.json
//
//	{
//	  "format": 1,
//	  "device": "3f2a…",                  // DeviceID: 32 lower-case hex digits
//	  "channel": "stable",
//	  "version": "2.0.0",                 // the release the event is about
//	  "serial": 2,
//	  "event": "applied",                 // applied, committed, failed, rolled-back
//	  "reason": "",                       // why, for failed and rolled-back
//	  "time": "2026-12-07T15:00:00Z",     // the device's clock
//	  "running": "1.0.0",                 // the version the device ran then
//	  "bucket": 0.42                      // its place in staged rollouts
//	}
//
// applied: the release was written, verified and armed for its trial.
// committed: its trial passed the health gate. failed: an apply of it
// failed (the reason names the error; the device may try again, and a
// later event replaces this one). rolled-back: its trial failed (health
// gate, panic, hang) and the device went back to the committed slot.
//
// # Device id
//
// The device id is HMAC-SHA256 keyed "twinroot device id v1" over the
// machine id (as package rollout reads it), its first 16 bytes in hex: a
// stable name for the device in reports that does not give its machine id
// away. A device without a machine id uses a random id kept in its state
// directory (device-id).
package report
