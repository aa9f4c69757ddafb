// Package atomicfile replaces files atomically, so that a reader or a crash
// sees either the old content or the new, never a part of it.
package atomicfile

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Write replaces path with what write writes: a temporary file in path's
// directory, written, given perm, synced, closed, renamed over path, then
// the directory synced so that the rename survives a crash. On any failure
// the temporary file is removed and path is left as it was (unless only the
// final directory sync failed, when the rename has already happened).
//
// The temporary file is named "."+base+".tmp-*": the leading dot and the
// suffix keep it out of globs such as *.eml. perm is set with chmod, so the
// umask does not apply.
func Write(path string, perm fs.FileMode, write func(io.Writer) error) (err error) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err = write(tmp); err != nil {
		return err
	}
	// CreateTemp makes the file 0600.
	if err = tmp.Chmod(perm); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir syncs a directory, making the creation, removal or renaming of
// the names in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
