package wavefile_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/roster/wavefile"
)

const secretLine = "MAILWAVE_SECRET_SMTP_PW=hunter2-do-not-leak"

// A roster is found by wave ID under the store's directory, and only there.
func TestStoreByWaveID(t *testing.T) {
	ctx := context.Background()
	s := wavefile.NewStore(t.TempDir())
	mailboxes := []wavefile.Mailbox{
		{Index: 0, Key: "k0", Address: "a@trust.example"},
		{Index: 1, Key: "k1", Address: "b@trust.example", Org: "trust", DisplayName: "B"},
	}
	require.NoError(t, s.Write(ctx, "night-1", mailboxes))
	rows, err := s.Rows(ctx, "night-1", 0, 2)
	require.NoError(t, err)
	assert.Equal(t, mailboxes, rows)
	got, err := s.Get(ctx, "night-1", []int{1})
	require.NoError(t, err)
	assert.Equal(t, mailboxes[1:], got)
	assert.ErrorIs(t, s.Write(ctx, "night-1", mailboxes), fs.ErrExist)

	for _, id := range []string{"../secrets", "/proc/self/environ", "a/b", "..", "", ".hidden", "x'y", strings.Repeat("w", 65)} {
		_, err := s.Rows(ctx, id, 0, 1)
		assert.ErrorContains(t, err, "a wave ID is", id)
	}
	require.NoError(t, s.Remove(ctx, "night-1"))
	require.NoError(t, s.Remove(ctx, "night-1"), "removing twice is fine")
	_, err = s.Rows(ctx, "night-1", 0, 1)
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

// What a hostile starter or operator could plant in the store is refused
// without being read, and no error quotes a file's content.
func TestStoreRefusesWhatIsNotARoster(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := wavefile.NewStore(dir)
	secrets := filepath.Join(t.TempDir(), "secrets")
	require.NoError(t, os.WriteFile(secrets, []byte(secretLine+"\nkey,address,org,display_name\n"), 0o600))

	// A link to a secret file.
	require.NoError(t, os.Symlink(secrets, filepath.Join(dir, "linked.csv")))
	// A link to /proc.
	require.NoError(t, os.Symlink("/proc/self/environ", filepath.Join(dir, "proc.csv")))
	// A FIFO: opening it for reading would wait for a writer forever.
	require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "fifo.csv"), 0o600))
	// A regular file that is not a roster, its first line a secret.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "copied.csv"), []byte(secretLine+"\n"), 0o600))
	// A line longer than any roster's.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "long.csv"),
		[]byte("key,address,org,display_name\n"+strings.Repeat("x", wavefile.MaxLineBytes+10)+"\n"), 0o600))
	// A file larger than any wave's (sparse: no disk used).
	big, err := os.Create(filepath.Join(dir, "big.csv"))
	require.NoError(t, err)
	require.NoError(t, big.Truncate(wavefile.MaxFileBytes+1))
	require.NoError(t, big.Close())

	for id, want := range map[string]string{
		"linked": "symbolic link", "proc": "symbolic link", "fifo": "not a regular file",
		"copied": "not the header", "long": "longer than", "big": "more than a wave's file can be",
	} {
		done := make(chan error, 1)
		go func() { _, err := s.Rows(ctx, id, 0, 1); done <- err }()
		select {
		case err := <-done:
			require.Error(t, err, id)
			assert.Contains(t, err.Error(), want, id)
			assert.NotContains(t, err.Error(), "hunter2", id)
			assert.NotContains(t, err.Error(), "xxxxxxxx", id)
			assert.False(t, errors.Is(err, wavefile.ErrOutOfRange), id)
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: reading the roster blocked", id)
		}
	}
}

// The first fingerprint is recorded; the same one passes; another is
// refused, naming both and the record.
func TestStoreKeepsTheDeploymentsFingerprint(t *testing.T) {
	ctx := context.Background()
	s := wavefile.NewStore(filepath.Join(t.TempDir(), "waves"))
	require.NoError(t, s.CheckFingerprint(ctx, "aaaa1111aaaa1111"))
	require.NoError(t, s.CheckFingerprint(ctx, "aaaa1111aaaa1111"))
	err := s.CheckFingerprint(ctx, "bbbb2222bbbb2222")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "fingerprint is bbbb2222bbbb2222, but this deployment began with aaaa1111aaaa1111")

	// A record replaced by a link to a secret is not read through, and
	// nothing of the secret is quoted.
	secret := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(secret, []byte(secretLine), 0o600))
	rec := filepath.Join(s.Dir(), ".key-secret-fingerprint")
	require.NoError(t, os.Remove(rec))
	require.NoError(t, os.Symlink(secret, rec))
	err = s.CheckFingerprint(ctx, "aaaa1111aaaa1111")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "hunter2")
}
