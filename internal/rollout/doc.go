// Package rollout decides, on the device alone, whether a release's staged
// rollout has reached this device: no server keeps a list of who goes
// first. It owns the bucket function and the share of the fleet a rollout
// has reached at a given time.
//
// # Bucket
//
// Every device has a bucket in [0, 1), fixed by its machine id and the
// same for every release, so that the same devices go first each time:
//
//	mac    = HMAC-SHA256(key "twinroot rollout bucket v1", machine id)
//	bucket = (first 8 bytes of mac, big-endian) / 2^64
//
// The machine id is /etc/machine-id's 32 lower-case hex digits (surrounding
// white space dropped; upper case folded). The key keeps the bucket from
// telling anything about the machine id, and apart from every other value
// derived from it (systemd's app-specific ids do the same). The function
// never changes: a test pins its values. device.yaml can pin a device
// instead: a canary has bucket 0 (it goes first), a late device bucket 1
// (it goes when the rollout is complete).
//
// # Share
//
// A manifest's rollout (package manifest) has a start, a duration, a share
// at the start (start_percent, 0 to 100) and, while paused, the time it was
// paused. The share it has reached at time t is 0 before the start, then
// grows linearly from start_percent at the start to 100 % at start +
// duration, and stays at 100 % after. A paused rollout's share stays what
// it was when paused, and no device starts it then: only a device that
// has already started writing the release goes on. A device is in when
// its bucket is below the share (or the share is 100 %), and takes the
// release at its next check.
package rollout
