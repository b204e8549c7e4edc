package bootstate

import (
	"fmt"
	"os"

	"github.com/twinroot/twinroot/internal/grub"
	"github.com/twinroot/twinroot/internal/partition"
)

// Disk is an open twinroot disk (an image file or a block device) with its
// layout and its boot environment.
type Disk struct {
	File   *os.File
	Layout partition.Layout
	Env    *grub.EnvStore
}

// OpenDisk opens path read-write and locates the boot environment.
func OpenDisk(path string) (*Disk, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open disk: %w", err)
	}
	l, err := partition.Read(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	env, err := grub.OpenEnvStore(f, l.ESP.Start)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Disk{File: f, Layout: l, Env: env}, nil
}

// Close closes the disk.
func (d *Disk) Close() error { return d.File.Close() }

// Load reads the boot state as GRUB would.
func (d *Disk) Load() (State, error) {
	env, _, err := d.Env.Load()
	if err != nil {
		return State{}, err
	}
	return FromEnv(env), nil
}

// Save writes s crash-safely.
func (d *Disk) Save(s State) error { return d.Env.Save(s.Env()) }

// Update loads the state, applies f and saves the result when it changed.
func (d *Disk) Update(f func(State) (State, error)) (State, error) {
	s, err := d.Load()
	if err != nil {
		return s, err
	}
	n, err := f(s)
	if err != nil {
		return s, err
	}
	if n == s {
		return n, nil
	}
	if err := d.Save(n); err != nil {
		return s, err
	}
	return n, nil
}
