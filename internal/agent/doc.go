// Package agent is the device side of twinroot: what `updater boot`,
// `updater apply` and the daemon do. Boot finishes a trial boot through
// the health gate (commit, or mark bad and reboot) and records a trial
// that GRUB gave up on; Checker judges the channel's latest.json (a
// conditional GET watched and retried as package fetch does, every
// acceptance rule, a refusal reported once per version); Updater writes
// an accepted release into the inactive slot through the slot engine
// (package engine); Round runs check, apply and the reboot decision of
// the config's policy as one round, and records in the updater state why
// a version could not be taken (package state), which updater status
// shows.
package agent
