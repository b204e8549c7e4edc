// Command fleet simulates a fleet of twinroot devices against one S3
// store, with no server of twinroot's own, and prints what the store
// served and how the staged rollouts went.
//
// Every simulated device is the real device code: the agent's Checker
// (a conditional GET of latest.json, the manifest's rules, the rollout's
// wave from the device's own bucket), the slot engine writing the release
// into a sparse file of its own (a delta against the image the device
// runs, verified chunk by chunk), and the reporter writing its report
// objects. Only the boot is simulated: a trial ends two simulated minutes
// after it is armed, committed, or rolled back on the devices a release
// is made to fail on (GRUB boots are proven by the QEMU scenarios).
//
// Time is simulated: each device checks on its own jittered timer (every
// -interval plus up to -jitter, and at its rollout turn when that comes
// sooner), and the clock moves on only once the devices due have been
// served, so the figures hold on a slow machine too. Requests and bytes
// are counted at the store: MinIO's own audit log of every request it
// answered, posted to the bench.
//
// The run, on one MinIO and then on a distributed MinIO of four processes
// on this host (devices spread over its nodes):
//
//  1. 1.0.0 is published; every device checks once and keeps latest.json
//     with its ETag.
//  2. 2.0.0 is published with a rollout over one simulated hour; at each
//     quarter the share of devices that began it is set beside the share
//     the rollout reached (within 2 percentage points).
//  3. 3.0.0 is published the same way, failing the trial of a tenth of the
//     devices; `updater rollout watch --max-failure 5%` (its code, every
//     simulated minute) must pause it before half of the fleet tried it.
//
// Every check that found nothing new must have been one conditional GET
// that the store answered 304.
package main
