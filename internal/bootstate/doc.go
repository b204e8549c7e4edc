// Package bootstate is the meaning of the GRUB environment: which slot is
// committed, which one is on trial with how many boots left, and the state of
// each slot. It holds the transitions (arm, commit, rollback, mark bad,
// prepare for writing), a Go model of the choice grub.cfg makes at boot, and
// the reading of the running slot from the kernel command line.
//
// The variables and the crash-safe storage are those of package grub:
//
//	twinroot_committed  a|b            slot booted when no trial is due
//	twinroot_trial      ""|a|b         slot on trial
//	twinroot_tries      0..3           trial boots left; GRUB counts down before booting
//	twinroot_slot_a     ok|writing|bad|empty
//	twinroot_slot_b     ok|writing|bad|empty
//
// A slot is "writing" (never booted by GRUB) from before its first byte is
// overwritten until it is armed after its last byte is verified; "bad" after
// a failed trial; "ok" when it may be booted.
package bootstate
