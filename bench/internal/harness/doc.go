// Package harness is what the bench programs (bench/apply, bench/release)
// share around what they measure: the flags every one takes (-updater,
// -work, -o), its exit codes (0, 1 when a step failed, 2 on a usage
// error), running under a context that SIGINT and SIGTERM cancel, the
// report on stdout as a table or JSON while progress goes to stderr, the
// work directory, the updater binary and release key under test, running
// commands, and medians.
//
// It measures nothing itself: what a bench times, and how, stays in the
// bench.
package harness
