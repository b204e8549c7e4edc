// Package fleet owns what a fleet's operators read of it, with no server:
// the summary of a channel's device reports (package report) beside its
// latest release's staged rollout (package rollout), and the watch that
// pauses a rollout whose failures cross a threshold.
//
// # Summary
//
// Each device's latest report about each release counts once (a device
// writes one object per release, over the last). Of a release:
//
//	tried       devices that reported about it
//	in trial    its apply armed a trial that has not reported back yet
//	committed   its trial passed the health check
//	failed      its apply failed (the device may try again)
//	rolled back its trial failed; silent when the trial never reached its
//	            health check (GRUB fell back after a panic, a hang, a
//	            kernel that did not boot) and so could not say why
//	failure share (failed + rolled back) / (committed + failed + rolled back):
//	            of the devices that reached an outcome, the part that
//	            failed; a trial still running is no outcome yet
//
// A device runs the release of its latest report (by its time) when that
// report is a commit, else the version that report names as running.
//
// # Watch
//
// A watch (updater rollout watch, run by the publisher in CI or cron)
// pauses the rollout of the channel's latest release when its failure
// share is above the maximum and at least a minimum of devices reached an
// outcome (so that one early failure does not halt a fleet). The pause is
// the one of updater rollout pause: latest.json signed again, replaced
// only if nobody changed it, and only while it still names the release
// that was judged.
package fleet
