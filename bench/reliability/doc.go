// Command reliability is `make reliability`: the reliability campaign, run
// on this machine, written up as docs/reliability.md. The campaign is a list
// of parts, each a kind of trial that gives a section of rows: a figure, and
// the command that reproduces it. A failed trial is a row marked failed;
// the program carries on with the others and exits 1 at the end.
//
// The parts:
//
//   - fuzz: every fuzz target of the module, found with
//     `go test -list '^Fuzz' ./...` (so a new one joins by being written),
//     run alone for -fuzz-execs executions (10 million) with
//     `go test -run '^$' -fuzz '^Name$' -fuzztime <N>x`, from its seed corpus
//     in the package's testdata/fuzz/<Name>/ and what the fuzzing engine kept
//     in the Go build cache from earlier runs. A target that fails leaves its
//     input in testdata/fuzz/<Name>/, where go test runs it from then on: a
//     regression test once committed. Each new input the engine finds is
//     minimized for at most -fuzz-minimize executions (1000x): with Go's
//     default of a minute, targets whose inputs are kilobytes (slot images,
//     GPTs) spent nearly all their time minimizing, not fuzzing, and with
//     five seconds still seven tenths of it (a slot image's new input takes
//     all five, a fast target's a few milliseconds). A count costs each
//     target in proportion to its speed. The short form of this
//     part is plain go test, which runs every seed corpus as ordinary tests.
//
//   - store: the store-fault table of internal/agent (TestStoreFaults:
//     every fault of the fault proxy on every object a device fetches,
//     against MinIO and versitygw), run -store-rounds times (20), each a
//     `CI=1 go test -count=1 -json -run '^TestStoreFaults$' ./internal/agent`
//     (CI=1: a missing server fails the test instead of skipping it). A row
//     per store and case: the rounds it passed, its outcome and exit code,
//     the requests at the proxy and the retries, the round's time. The
//     short form is one round.
//
//   - power: the power-cut tests of cmd/updater (TestPowerCutsDuringApply,
//     TestPowerCutsInBootState, TestPowerCutsDuringInstall) with
//     TWINROOT_POWER_KILLS=250: apply (from the channel and from a local
//     release), commit, rollback, boot's commit write and its mark-bad
//     write, and the installer, each SIGKILLed 250 times at seeded random
//     instants on a loop device, checked after every kill (boot state,
//     GRUB's choice, e2fsck -fn of the data partition, every byte outside
//     the updater's state) and finished afterwards. A row per operation:
//     its kills, the runs that ended before their kill, the kills by phase
//     and those inside a boot-state write. The short form is 16 kills of
//     each, as in make test.
//
//   - qemu-power: TestScenarioPowerCutDuringUpdate and
//     TestScenarioDebianPowerCut of package qemu with
//     TWINROOT_POWERCUT_CUTS=20 and TWINROOT_POWERCUT_DEBIAN_CUTS=20: the
//     minimal system, then the Debian system with its services running,
//     under SeaBIOS and OVMF side by side, loses power 20 times during an
//     update from MinIO (QEMU killed at seeded random instants), checked
//     after every cut (boot state, GRUB's choice, e2fsck -fn after the
//     journal's replay, the journal's progress), then resumes and commits.
//     A row per system and firmware: its cuts, their instants, the
//     furthest journal at a cut, the cuts that found the slot armed, its
//     boots. The short form is 4 cuts each, as in make test (which cuts
//     the Debian guests twice). It needs the kernel and GRUB images that
//     make reliability builds, and builds the Debian base root once
//     (debootstrap, in build/debian).
//
// Disk faults, the clock and the watchdog join the list as further parts.
//
// The report heads with the date, the commit, the machine (CPU, cores,
// memory, kernel, Go) and the command that made it; a run with fewer
// executions than the campaign's, or with -short, says at its top that it
// is a short run. Nothing here is a time limit.
//
// The report has a JSON twin beside it (docs/reliability.json, the form
// -o json prints). With -keep, a run keeps what the twin holds of the
// parts it does not run and of the fuzz targets it does not fuzz, so that
// the campaign, whose fuzzing alone takes hours, can run in slices. A kept
// section carries the run that made it (date, commit, command, machine),
// which the markdown names under its title. The fuzz part stays one table
// however many slices fuzzed its targets: each kept row carries its run,
// named in a column of its own and listed under the table; the
// section's duration adds up its rows'. The report is short until its
// sections cover every part and every fuzz target that go test -list
// finds, none of them from a short run.
//
//	go run ./bench/reliability                      # the campaign: docs/reliability.md, progress on stderr
//	go run ./bench/reliability -fuzz-execs 20000    # a short run of the same
//	go run ./bench/reliability -short -report ''    # the quick form, the report on stdout only
//	go run ./bench/reliability -o json              # the figures for machines
//	go run ./bench/reliability -parts store -store-rounds 3 -report ''   # the store faults alone
//	go run ./bench/reliability -keep -parts fuzz -fuzz-match grubenv    # one slice of the campaign
package main
