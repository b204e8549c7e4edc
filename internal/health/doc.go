// Package health is the health gate a trial boot must pass before it is
// committed: systemd units that must be active and commands that must exit
// 0, all within one deadline. A check that fails is retried until the
// deadline, so a service that takes a while to come up still passes.
package health
