// Package cli is what the twinroot commands share: the one mapping from
// errors to exit codes, text or JSON output, slog logging (plain records
// under systemd, readable on a terminal), progress bars on a terminal, and
// opening the disk a device-side command acts on.
package cli
