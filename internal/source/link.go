package source

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// linkNoReplace publishes tmp as dst with a hard link, which fails rather
// than replace an existing dst; the caller removes tmp.
func linkNoReplace(tmp, dst string) error {
	err := os.Link(tmp, dst)
	if errors.Is(err, fs.ErrExist) {
		return ErrExists
	}
	if err != nil {
		return fmt.Errorf("link into place: %w", err)
	}
	return nil
}
