// Package engine writes a release into a slot: the one path every byte
// that enters a slot takes, whether `installer install` writes slot A, the
// agent applies the channel's release, or `updater apply --from` a release
// on local media.
//
// The order is the boot protocol's, in one place: the image must fit the
// slot; what the boot state would refuse is refused before anything is
// written; the slot is marked not bootable (Boot.Prepare) once the journal
// names the release (a data partition too full for it leaves the boot
// state alone) and before the slot's first byte is overwritten; the bytes
// come through package fetch (chunks the machine already has are copied,
// the rest fetched, every chunk hashed against the release's signed index
// before it is written, progress journaled so that an interrupted write
// resumes); and only a slot whose every chunk was verified is armed
// (Boot.Arm). The index the slot was written from is then kept in the
// state directory (package state), so the next write against this slot
// need not scan it.
//
// What a Write trusts comes from package release: a Release whose
// manifest passed its policy and whose index matches the manifest.
package engine
