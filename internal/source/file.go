package source

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/twinroot/twinroot/internal/storeurl"
)

// tmpPrefix names files being written; List never shows them and a crash
// leaves nothing but such a file behind.
const tmpPrefix = ".twinroot-tmp-"

// hashETagLimit: files up to this size get a content-hash ETag, larger ones
// one from size and mtime (hashing a GiB image on every Stat is too slow).
// Manifests are small, so latest.json's ETag changes with its content even
// on FAT media whose mtime has a 2 s granularity.
const hashETagLimit = 1 << 20

type fileStore struct {
	loc  storeurl.Location
	root string
}

func openFile(loc storeurl.Location) (*fileStore, error) {
	fi, err := os.Stat(loc.Prefix)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", loc.Raw, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("open %s: not a directory", loc.Raw)
	}
	return &fileStore{loc: loc, root: loc.Prefix}, nil
}

func (f *fileStore) String() string { return f.loc.Raw }

func (f *fileStore) path(key string) (string, error) {
	if err := storeurl.CheckKey(key); err != nil {
		return "", err
	}
	return filepath.Join(f.root, filepath.FromSlash(key)), nil
}

func (f *fileStore) url(key string) string {
	return "file://" + filepath.ToSlash(filepath.Join(f.root, key))
}

func (f *fileStore) fsError(op, key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s %s: %w", op, f.url(key), ErrNotFound)
	}
	return fmt.Errorf("%s %s: %w", op, f.url(key), err)
}

// open opens key for reading, refusing directories, and returns its ETag.
func (f *fileStore) open(op, key string) (*os.File, os.FileInfo, string, error) {
	p, err := f.path(key)
	if err != nil {
		return nil, nil, "", err
	}
	fh, err := os.Open(p)
	if err != nil {
		return nil, nil, "", f.fsError(op, key, err)
	}
	fi, err := fh.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("not a regular file: %w", fs.ErrNotExist)
	}
	var etag string
	if err == nil {
		etag, err = fileETag(fh, fi)
	}
	if err != nil {
		fh.Close()
		return nil, nil, "", f.fsError(op, key, err)
	}
	return fh, fi, etag, nil
}

func fileETag(fh *os.File, fi os.FileInfo) (string, error) {
	if fi.Size() > hashETagLimit {
		return fmt.Sprintf(`"%x-%x"`, fi.Size(), fi.ModTime().UnixNano()), nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(fh, 0, fi.Size())); err != nil {
		return "", err
	}
	return `"` + hex.EncodeToString(h.Sum(nil)[:16]) + `"`, nil
}

func (f *fileStore) Get(_ context.Context, key, etag string) (io.ReadCloser, string, error) {
	fh, _, cur, err := f.open("get", key)
	if err != nil {
		return nil, "", err
	}
	if etag != "" && etag == cur {
		fh.Close()
		return nil, "", fmt.Errorf("get %s: %w", f.url(key), ErrNotModified)
	}
	return fh, cur, nil
}

func (f *fileStore) GetRange(_ context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if err := checkRange(off, n); err != nil {
		return nil, err
	}
	fh, fi, _, err := f.open(fmt.Sprintf("get [%d, %d) of", off, off+n), key)
	if err != nil {
		return nil, err
	}
	if off+n > fi.Size() {
		fh.Close()
		return nil, fmt.Errorf("get [%d, %d) of %s (size %d): %w", off, off+n, f.url(key), fi.Size(), ErrRange)
	}
	return &exactReader{r: io.NewSectionReader(fh, off, n), c: fh, left: n}, nil
}

func (f *fileStore) Stat(_ context.Context, key string) (int64, string, error) {
	fh, fi, etag, err := f.open("stat", key)
	if err != nil {
		return 0, "", err
	}
	fh.Close()
	return fi.Size(), etag, nil
}

// write copies size bytes into a temporary file beside key's path, synced,
// and hands it to commit; the temporary file is gone afterwards either way.
func (f *fileStore) write(op, key string, size int64, fill func(*os.File) error, commit func(tmp, dst string) error) error {
	dst, err := f.path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("%s %s: %w", op, f.url(key), err)
	}
	tmp := filepath.Join(filepath.Dir(dst), tmpPrefix+rand.Text())
	fh, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, f.url(key), err)
	}
	defer os.Remove(tmp)
	err = fill(fh)
	if err == nil {
		var fi os.FileInfo
		if fi, err = fh.Stat(); err == nil && fi.Size() != size {
			err = fmt.Errorf("wrote %d bytes, want %d", fi.Size(), size)
		}
	}
	if err == nil {
		err = fh.Sync()
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, f.url(key), err)
	}
	if err := commit(tmp, dst); err != nil {
		return fmt.Errorf("%s %s: %w", op, f.url(key), err)
	}
	return syncDir(filepath.Dir(dst))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

func (f *fileStore) PutIfAbsent(_ context.Context, key string, r io.Reader, size int64) error {
	if p, err := f.path(key); err != nil {
		return err
	} else if _, err := os.Lstat(p); err == nil {
		return fmt.Errorf("put %s: %w", f.url(key), ErrExists)
	}
	fill := func(fh *os.File) error {
		_, err := io.Copy(fh, io.LimitReader(r, size))
		return err
	}
	return f.write("put", key, size, fill, renameNoReplace)
}

// Upload copies sequentially: a local disk gains nothing from parallel
// parts, so partSize and parallel are ignored.
func (f *fileStore) Upload(ctx context.Context, key string, r io.ReaderAt, size, _ int64, _ int) error {
	return f.PutIfAbsent(ctx, key, io.NewSectionReader(r, 0, size), size)
}

func (f *fileStore) Put(_ context.Context, key string, r io.Reader, size int64) error {
	fill := func(fh *os.File) error {
		_, err := io.Copy(fh, io.LimitReader(r, size))
		return err
	}
	return f.write("put", key, size, fill, os.Rename)
}

func (f *fileStore) Replace(_ context.Context, key string, r io.Reader, size int64, etag string) error {
	fill := func(fh *os.File) error {
		_, err := io.Copy(fh, io.LimitReader(r, size))
		return err
	}
	commit := func(tmp, dst string) error {
		if etag == "" {
			return renameNoReplace(tmp, dst)
		}
		// Check, then swap: one publisher per directory is assumed for
		// local media (an S3 store checks on the server).
		_, cur, err := f.Stat(context.Background(), key)
		if errors.Is(err, ErrNotFound) || (err == nil && cur != etag) {
			return ErrChanged
		}
		if err != nil {
			return err
		}
		return os.Rename(tmp, dst)
	}
	return f.write("replace", key, size, fill, commit)
}

func (f *fileStore) List(_ context.Context, prefix string) ([]Object, error) {
	// Walk only the deepest directory the prefix names.
	dir := f.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		if err := storeurl.CheckKey(prefix[:i]); err != nil {
			return nil, fmt.Errorf("list %q: %w", prefix, err)
		}
		dir = filepath.Join(f.root, filepath.FromSlash(prefix[:i]))
	}
	var objs []Object
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == dir {
				return fs.SkipAll
			}
			return err
		}
		if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil
		}
		rel, err := filepath.Rel(f.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		fh, err := os.Open(p)
		if err != nil {
			return err
		}
		defer fh.Close()
		fi, err := fh.Stat()
		if err != nil {
			return err
		}
		etag, err := fileETag(fh, fi)
		if err != nil {
			return err
		}
		objs = append(objs, Object{Key: key, Size: fi.Size(), ETag: etag})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", f.url(prefix), err)
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].Key < objs[j].Key })
	return objs, nil
}
