package wavefile

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/identity"
)

func testKeyer(t *testing.T) *identity.Keyer {
	t.Helper()
	k, err := identity.NewKeyer([]byte("0123456789abcdef-test-secret"))
	require.NoError(t, err)
	return k
}

// mailboxes returns n mailboxes with made-up keys; tag tells versions apart.
func mailboxes(n int, tag string) []Mailbox {
	out := make([]Mailbox, n)
	for i := range out {
		out[i] = Mailbox{
			Index:       i,
			Key:         fmt.Sprintf("%s%030d", tag, i),
			Address:     fmt.Sprintf("user%d@trust.nhs.example", i),
			Org:         "Trust " + tag,
			DisplayName: fmt.Sprintf("User %d", i),
		}
	}
	return out
}

func TestBuild(t *testing.T) {
	k := testKeyer(t)
	rows := []Row{
		{Line: 2, Address: "jo.bloggs@trust.nhs.example", Org: "A", DisplayName: "Jo"},
		{Line: 5, Address: "Sam@Trust.NHS.example", Org: "B"},
	}
	got, err := Build(rows, k)
	require.NoError(t, err)
	require.Len(t, got, 2)
	for i, m := range got {
		want, err := k.Key(rows[i].Address)
		require.NoError(t, err)
		assert.Equal(t, i, m.Index)
		assert.Equal(t, want, m.Key)
		assert.Regexp(t, "^[0-9a-f]{32}$", m.Key)
	}
	assert.Equal(t, Mailbox{Index: 1, Key: got[1].Key, Address: "sam@trust.nhs.example", Org: "B"}, got[1])

	_, err = Build(append(rows, Row{Line: 9, Address: "SAM@trust.nhs.example"}), k)
	assert.EqualError(t, err, "line 9: sam@trust.nhs.example is a duplicate of line 5")
	_, err = Build([]Row{{Line: 3, Address: "nope"}}, k)
	assert.ErrorContains(t, err, "line 3: ")
	_, err = Build(rows, nil)
	assert.Error(t, err)
}

func TestWriteReadRoundTrip(t *testing.T) {
	rows, err := Parse(strings.NewReader("address,org,display_name\n"+
		"jo@trust.nhs.example,\"Trust, A\",\"Jo \"\"JB\"\" Bloggs\"\n"+
		"sam@trust.nhs.example,B,\"Sam, \"\"two commas\"\", Smith\"\n"+
		"al@trust.nhs.example,,\n"), "in.csv")
	require.NoError(t, err)
	want, err := Build(rows, testKeyer(t))
	require.NoError(t, err)

	dir := filepath.Join(t.TempDir(), "waves", "2026-12-05")
	path := filepath.Join(dir, "mailboxes.csv")
	require.NoError(t, Write(path, want))

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file left behind")
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, filePerm, fi.Mode().Perm())

	r := NewReader()
	n, err := r.Count(path)
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	all, err := r.Rows(path, 0, 3)
	require.NoError(t, err)
	assert.Equal(t, want, all)
	page, err := r.Rows(path, 1, 3)
	require.NoError(t, err)
	assert.Equal(t, want[1:3], page)
	empty, err := r.Rows(path, 3, 3)
	require.NoError(t, err)
	assert.Empty(t, empty)
	picked, err := r.Get(path, []int{2, 0})
	require.NoError(t, err)
	assert.Equal(t, []Mailbox{want[2], want[0]}, picked)

	// Results are copies: changing them leaves the cache alone.
	all[0].Address = "changed"
	again, err := r.Get(path, []int{0})
	require.NoError(t, err)
	assert.Equal(t, want[0], again[0])
}

func TestWriteEmptyWave(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.csv")
	require.NoError(t, Write(path, nil))
	n, err := NewReader().Count(path)
	require.NoError(t, err)
	assert.Zero(t, n)
}

func TestWriteRefusesToOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wave.csv")
	require.NoError(t, Write(path, mailboxes(3, "aa")))
	before, err := os.ReadFile(path)
	require.NoError(t, err)

	err = Write(path, mailboxes(2, "bb"))
	require.ErrorIs(t, err, fs.ErrExist)
	assert.ErrorContains(t, err, path)
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, before, after)

	// The last-moment check, for a file that appears while writing.
	tmp := filepath.Join(filepath.Dir(path), "other")
	require.NoError(t, os.WriteFile(tmp, nil, 0o600))
	assert.ErrorIs(t, publish(tmp, path), fs.ErrExist)
}

func TestWriteChecksIndexes(t *testing.T) {
	m := mailboxes(3, "aa")
	m[1], m[2] = m[2], m[1]
	path := filepath.Join(t.TempDir(), "wave.csv")
	err := Write(path, m)
	assert.EqualError(t, err, "write "+path+": mailbox at position 1 has index 2")
	assert.NoFileExists(t, path)
}

func TestReaderOutOfRange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wave.csv")
	require.NoError(t, Write(path, mailboxes(3, "aa")))
	r := NewReader()

	_, err := r.Get(path, []int{0, 3})
	require.ErrorIs(t, err, ErrOutOfRange)
	assert.EqualError(t, err, "wave file "+path+" has 3 rows: index 3: index out of range")
	_, err = r.Get(path, []int{-1})
	assert.ErrorContains(t, err, "index -1")
	_, err = r.Rows(path, 1, 4)
	assert.ErrorContains(t, err, "index 3")
	_, err = r.Rows(path, -2, 1)
	assert.ErrorContains(t, err, "index -2")
	_, err = r.Rows(path, 4, 4)
	assert.ErrorContains(t, err, "index 4")
	_, err = r.Rows(path, 2, 1)
	assert.ErrorContains(t, err, "the end is before the start")
}

func TestReaderRereadsAChangedFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "wave.csv")
	require.NoError(t, Write(path, mailboxes(3, "aa")))
	r := NewReader()
	got, err := r.Get(path, []int{0})
	require.NoError(t, err)
	assert.Equal(t, "aa", got[0].Key[:2])

	// The same size and modification time: the cached rows are served,
	// showing that the file is not read again.
	fi, err := os.Stat(path)
	require.NoError(t, err)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	sameSize := []byte(strings.ReplaceAll(string(data), "aa0", "cc0"))
	require.NoError(t, os.WriteFile(path, sameSize, 0o600))
	require.NoError(t, os.Chtimes(path, fi.ModTime(), fi.ModTime()))
	got, err = r.Get(path, []int{0})
	require.NoError(t, err)
	assert.Equal(t, "aa", got[0].Key[:2], "served from the cache")

	// A new file at the path is picked up.
	require.NoError(t, os.Remove(path))
	require.NoError(t, Write(path, mailboxes(5, "bb")))
	require.NoError(t, os.Chtimes(path, fi.ModTime().Add(time.Second), fi.ModTime().Add(time.Second)))
	n, err := r.Count(path)
	require.NoError(t, err)
	assert.Equal(t, 5, n)
	got, err = r.Get(path, []int{4})
	require.NoError(t, err)
	assert.Equal(t, "bb", got[0].Key[:2])
}

func TestReaderBadFiles(t *testing.T) {
	dir := t.TempDir()
	r := NewReader()
	missing := filepath.Join(dir, "later.csv")
	_, err := r.Count(missing)
	require.ErrorIs(t, err, fs.ErrNotExist)
	require.NoError(t, Write(missing, mailboxes(2, "aa")))
	n, err := r.Count(missing)
	require.NoError(t, err, "a failure is not cached")
	assert.Equal(t, 2, n)

	for name, content := range map[string]string{
		"empty":        "",
		"wrong header": "address,key,org,display_name\n",
		"short row":    "key,address,org,display_name\nk1,a@b.example,,\nk2,c@d.example\n",
		"no key":       "key,address,org,display_name\nk1,a@b.example,,\n,c@d.example,,\n",
	} {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
		_, err := r.Count(path)
		assert.ErrorContains(t, err, path, name)
	}
}

func TestReaderConcurrentUse(t *testing.T) {
	dir := t.TempDir()
	const files, rows = 3, 1_000
	paths := make([]string, files)
	for i := range paths {
		paths[i] = filepath.Join(dir, fmt.Sprintf("wave%d.csv", i))
		require.NoError(t, Write(paths[i], mailboxes(rows, fmt.Sprintf("%02d", i))))
	}
	r := NewReader()
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			path := paths[g%files]
			tag := fmt.Sprintf("%02d", g%files)
			for from := 0; from < rows; from += 100 {
				page, err := r.Rows(path, from, from+100)
				if !assert.NoError(t, err) {
					return
				}
				for i, m := range page {
					assert.Equal(t, from+i, m.Index)
					assert.Equal(t, fmt.Sprintf("%s%030d", tag, from+i), m.Key)
				}
				got, err := r.Get(path, []int{from, rows - 1})
				if assert.NoError(t, err) {
					assert.Equal(t, rows-1, got[1].Index)
				}
			}
			n, err := r.Count(path)
			assert.NoError(t, err)
			assert.Equal(t, rows, n)
		})
	}
	wg.Wait()
}

func TestReaderKeepsABoundedNumberOfFiles(t *testing.T) {
	dir := t.TempDir()
	r := NewReader()
	first := filepath.Join(dir, "wave0.csv")
	for i := range maxCachedFiles + 5 {
		path := filepath.Join(dir, fmt.Sprintf("wave%d.csv", i))
		require.NoError(t, Write(path, mailboxes(1, "aa")))
		_, err := r.Count(path)
		require.NoError(t, err)
		_, err = r.Count(first) // kept in use, so never the one dropped
		require.NoError(t, err)
	}
	assert.Len(t, r.files, maxCachedFiles)
	assert.Contains(t, r.files, first)
}
