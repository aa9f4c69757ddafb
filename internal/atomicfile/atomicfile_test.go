package atomicfile_test

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/internal/atomicfile"
)

func writeString(s string) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := io.WriteString(w, s)
		return err
	}
}

// names lists dir, dot files included, sorted.
func names(t *testing.T, dir string) []string {
	t.Helper()
	d, err := os.Open(dir)
	require.NoError(t, err)
	defer d.Close()
	list, err := d.Readdirnames(-1)
	require.NoError(t, err)
	slices.Sort(list)
	return list
}

func TestWriteCreatesAndReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.eml")

	require.NoError(t, atomicfile.Write(path, 0o640, writeString("first")))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "first", string(got))
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o640), info.Mode().Perm())

	require.NoError(t, atomicfile.Write(path, 0o604, writeString("second")))
	got, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "second", string(got))
	info, err = os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o604), info.Mode().Perm(), "perm is set, not masked by the umask")

	assert.Equal(t, []string{"a.eml"}, names(t, dir), "no temporary file left")
}

func TestWriteFailureLeavesOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ledger.sent")
	require.NoError(t, os.WriteFile(path, []byte("old"), 0o600))

	boom := errors.New("boom")
	err := atomicfile.Write(path, 0o640, func(w io.Writer) error {
		_, _ = io.WriteString(w, "half")
		return boom
	})
	assert.ErrorIs(t, err, boom)

	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "old", string(got))
	assert.Equal(t, []string{"ledger.sent"}, names(t, dir), "the temporary file is removed")
}

func TestWriteTemporaryFileIsHidden(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.eml")
	err := atomicfile.Write(path, 0o640, func(io.Writer) error {
		matches, err := filepath.Glob(filepath.Join(dir, "*.eml"))
		require.NoError(t, err)
		assert.Empty(t, matches, "the temporary file escapes a *.eml glob")
		tmps, err := filepath.Glob(filepath.Join(dir, ".a.eml.tmp-*"))
		require.NoError(t, err)
		assert.Len(t, tmps, 1)
		return nil
	})
	require.NoError(t, err)
}

func TestWriteRelativePathStaysInItsDirectory(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	err := atomicfile.Write("map", 0o644, func(io.Writer) error {
		tmps, err := filepath.Glob(filepath.Join(dir, ".map.tmp-*"))
		require.NoError(t, err)
		assert.Len(t, tmps, 1, "the temporary file is beside the target, not in $TMPDIR")
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"map"}, names(t, dir))
}

func TestWriteMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "a.eml")
	called := false
	err := atomicfile.Write(path, 0o640, func(io.Writer) error { called = true; return nil })
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.False(t, called)
}

func TestSyncDir(t *testing.T) {
	assert.NoError(t, atomicfile.SyncDir(t.TempDir()))
	assert.ErrorIs(t, atomicfile.SyncDir(filepath.Join(t.TempDir(), "missing")), fs.ErrNotExist)
}
