// Package manifest owns the release manifest of a twinroot channel, its
// signed envelope, and Verify: the one function every reader (the device
// agent, updater verify, the installer) calls before acting on a manifest.
//
// # Manifest (schema 1)
//
// A bare manifest is one JSON object; Marshal writes it indented with a
// trailing newline, and `updater build` writes it so to DIR/manifest.json:
//
//	{
//	  "schema": 1,
//	  "channel": "stable",                       // [a-z0-9][a-z0-9._-]{0,63}
//	  "version": "1.4.0",                        // strict semver 2.0.0, no "v"
//	  "serial": 42,                              // >= 1, only ever goes up
//	  "created": "2026-03-01T12:00:00Z",         // RFC 3339
//	  "expires": "2026-03-31T12:00:00Z",         // after created
//	  "image": {
//	    "key": "1.4.0/slot.img.zst",             // relative to <prefix>/<channel>/
//	    "size": 419430400,                       // raw slot image bytes
//	    "sha256": "<64 lowercase hex>",          // of the raw slot image
//	    "compressed_size": 130023424             // bytes of slot.img.zst
//	  },
//	  "index": {"key": "1.4.0/chunks.idx", "sha256": "<64 lowercase hex>"},
//	  "min_serial": 40,                          // anti-rollback floor
//	  "rollout": {                               // optional: a staged rollout (package rollout)
//	    "start": "2026-03-02T00:00:00Z",
//	    "duration": "72h0m0s",                   // from start_percent to 100 % of devices
//	    "start_percent": 5,                      // optional, 0 to 100: the share at the start
//	    "paused_at": "2026-03-03T08:00:00Z"      // optional: paused; no device starts it
//	  },
//	  "containers": [{"name": "web", "digest": "sha256:..."}]              // optional, informational
//	}
//
// The reading is strict: unknown fields, duplicate keys, keys that are not
// lower case and data after the object are refused (ErrMalformed), as is a
// schema other than 1. A new field means a new schema number, so an old
// device never acts on a manifest it half understands. Object keys are
// clean relative paths (no "..", no leading "/"), so the same manifest
// works from s3://, https:// and file:// sources. (The rollout's
// start_percent and paused_at joined schema 1 before any device shipped.)
//
// Channel and expires are set when the manifest is signed (`updater sign`,
// `updater publish`); an unsigned build output may lack them, which Decode
// accepts and Parse, Sign and Verify do not.
//
// # Signed envelope
//
// DIR/manifest.json after `updater sign`, <version>/manifest.json and
// latest.json in the store all hold the envelope:
//
//	{
//	  "manifest": "<standard base64 of the exact bare manifest bytes>",
//	  "signatures": [
//	    {"key_id": "3f2a9c0d81b7e645", "sig": "<standard base64 of 64 bytes>"}
//	  ]
//	}
//
// Each sig is Ed25519 (RFC 8032, pure) over the exact decoded manifest
// bytes: nothing is canonicalised, so what was signed is byte for byte what
// is parsed. key_id is the id of package keys (first 16 hex digits of the
// SHA-256 of the public key). Several signatures allow a key rotation: a
// release signed by the old and the new key is accepted by devices that
// trust either.
//
// # Acceptance rules (Verify)
//
// A device acts on a manifest only when, in this order (each rule has its
// own error, and the message is one line naming the rule):
//
//	document at most Policy.MaxSize (64 KiB), strict JSON   ErrMalformed
//	at least one signature by a trusted key, and every
//	  signature by a trusted key verifies                   ErrUntrustedKey, ErrBadSignature
//	manifest complete and well formed (Validate)            ErrMalformed
//	channel equals the device's                             ErrWrongChannel
//	now is before expires                                   ErrExpired
//	serial >= running serial                                ErrOlder
//	serial > running serial (equal: up to date)             ErrNotNewer
//	serial >= min_serial (the manifest's and the device's
//	  recorded floor)                                       ErrBelowMinSerial
//	serial >= highest serial ever accepted                  ErrRollback
//	version not recorded bad after a fallback               ErrBadVersion
//	image.size <= slot size                                 refusal.ErrDoesNotFit
//
// Signatures are checked before the manifest is parsed, so bytes no trusted
// key signed never reach the manifest decoder. Whether the device is inside
// the rollout window is the agent's decision, not an acceptance rule.
package manifest
