// Package agent is the device side of twinroot: what `updater boot` does at
// every boot. It finishes a trial boot through the health gate (commit, or
// mark bad and reboot), records a trial that GRUB gave up on, and reports
// the boot state. Checking the release channel and applying updates come in
// later steps of the same entry point.
package agent
