// Package atomicfile replaces files so that a crash leaves the old content
// or the new one, never a torn file: write a temporary file beside it,
// fsync, rename over, fsync the directory.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write replaces path with data, created with mode perm.
func Write(path string, data []byte, perm os.FileMode) error {
	return place(path, data, perm, os.Rename)
}

// Create makes path with data only if it does not exist yet: of two
// writers racing, the first one's file stays whole and the second gets an
// error satisfying errors.Is(err, os.ErrExist).
func Create(path string, data []byte, perm os.FileMode) error {
	return place(path, data, perm, os.Link)
}

// place writes a synced temporary file beside path and puts it at path.
func place(path string, data []byte, perm os.FileMode, put func(oldpath, newpath string) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, bare(err))
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: sync: %w", path, bare(err))
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, bare(err))
	}
	if err := put(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// Until the directory is synced, a power cut may undo the rename.
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("write %s: sync directory: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("write %s: sync directory: %w", path, err)
	}
	return nil
}

// bare drops what an *os.PathError repeats: the operation and the name of
// the temporary file, which the caller's message replaces with path.
func bare(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
