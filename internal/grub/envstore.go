package grub

import (
	"fmt"
	"io"
)

// Paths of the boot files on the ESP. GRUB's prefix is /boot/grub on the ESP
// for BIOS and for UEFI alike.
const (
	CfgPath = "/boot/grub/grub.cfg"
	EnvDir  = "/boot/grub/twinroot"
	EFIPath = "/EFI/BOOT/BOOTX64.EFI"
)

// The four blocks of the redundant environment, in the order of envFiles.
const (
	lock1 = iota
	env1
	lock2
	env2
)

var envFiles = [4]string{EnvDir + "/lock.1", EnvDir + "/env.1", EnvDir + "/lock.2", EnvDir + "/env.2"}

// EnvPaths are the ESP paths of the environment blocks: lock.1, env.1,
// lock.2, env.2.
func EnvPaths() [4]string { return envFiles }

// editingVar is the only variable of a lock block.
const editingVar = "twinroot_editing"

// BlockDevice is a disk: a sparse file in tests, a block device on a machine.
type BlockDevice interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
}

// EnvStore reads and writes the redundant boot environment in place on the
// ESP, exactly as grub.cfg reads it and as GRUB's save_env writes it.
type EnvStore struct {
	dev BlockDevice
	off [4]int64 // disk offsets of lock.1, env.1, lock.2, env.2
}

// OpenEnvStore locates the four environment blocks on the FAT32 ESP that
// starts at espOffset on dev.
func OpenEnvStore(dev BlockDevice, espOffset int64) (*EnvStore, error) {
	s := &EnvStore{dev: dev}
	for i, p := range envFiles {
		off, size, err := LocateFile(dev, espOffset, p)
		if err != nil {
			return nil, fmt.Errorf("locate %s on the ESP: %w", p, err)
		}
		if size != EnvSize {
			return nil, fmt.Errorf("%s on the ESP is %d bytes, want %d", p, size, EnvSize)
		}
		s.off[i] = off
	}
	return s, nil
}

// Offsets returns the disk offsets of lock.1, env.1, lock.2 and env.2.
func (s *EnvStore) Offsets() [4]int64 { return s.off }

func (s *EnvStore) read(i int) (Env, error) {
	b := make([]byte, EnvSize)
	if _, err := s.dev.ReadAt(b, s.off[i]); err != nil {
		return nil, fmt.Errorf("read %s: %w", envFiles[i], err)
	}
	return loadEnv(b)
}

func (s *EnvStore) write(i int, env Env) error {
	b, err := EncodeEnv(env)
	if err != nil {
		return err
	}
	if _, err := s.dev.WriteAt(b, s.off[i]); err != nil {
		return fmt.Errorf("write %s: %w", envFiles[i], err)
	}
	if err := s.dev.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", envFiles[i], err)
	}
	return nil
}

// Load returns the environment GRUB would load, and which copy (1 or 2) it
// came from: copy 1 when lock.1 says twinroot_editing=0, else copy 2; when the
// chosen copy has no signature, the other one. Each block is read as GRUB's
// load_env reads it: a block with the signature loads even when a variable
// in it is broken (those before the break count). The result is nil (every
// variable unset) when neither copy has a signature.
func (s *EnvStore) Load() (Env, int, error) {
	first, second := 2, 1
	if lock, err := s.read(lock1); err == nil {
		if v, _ := lock.Get(editingVar); v == "0" {
			first, second = 1, 2
		}
	}
	for _, c := range []int{first, second} {
		env, err := s.read(envIndex(c))
		if err == nil {
			return env, c, nil
		}
	}
	return nil, first, nil
}

// Save writes env to both copies so that a power cut at any instant leaves
// one complete copy that grub.cfg chooses: first the copy Load does not
// choose now, then the other; each copy as lock.N (editing=1), env.N, lock.N
// (editing=0), every block synced before the next is written. grub.cfg
// writes in the same order when it counts down a trial boot.
func (s *EnvStore) Save(env Env) error {
	_, used, err := s.Load()
	if err != nil {
		return err
	}
	for _, c := range []int{3 - used, used} {
		lock := lockIndex(c)
		if err := s.write(lock, Env{{editingVar, "1"}}); err != nil {
			return err
		}
		if err := s.write(envIndex(c), env); err != nil {
			return err
		}
		if err := s.write(lock, Env{{editingVar, "0"}}); err != nil {
			return err
		}
	}
	return nil
}

func envIndex(copyN int) int {
	if copyN == 1 {
		return env1
	}
	return env2
}

func lockIndex(copyN int) int {
	if copyN == 1 {
		return lock1
	}
	return lock2
}

// InitialEnvFiles returns the four environment blocks for a new ESP, both
// copies holding env and both locks clear.
func InitialEnvFiles(env Env) ([]File, error) {
	b, err := EncodeEnv(env)
	if err != nil {
		return nil, err
	}
	l, _ := EncodeEnv(Env{{editingVar, "0"}})
	return []File{
		{Path: envFiles[lock1], Data: l},
		{Path: envFiles[env1], Data: b},
		{Path: envFiles[lock2], Data: append([]byte(nil), l...)},
		{Path: envFiles[env2], Data: append([]byte(nil), b...)},
	}, nil
}
