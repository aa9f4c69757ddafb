package rosterstore_test

import (
	"io/fs"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/roster/rosterstore"
	"mailwave/roster/wavefile"
	"mailwave/testkit/postgres"
)

// Both stores keep the same promises: by wave ID only, written once, read
// by page or by index, removed, and one key secret fingerprint.
func TestStores(t *testing.T) {
	pg, ctx := postgres.WithDatabase(t, "rosters")
	for name, spec := range map[string]string{"directory": t.TempDir(), "postgres": pg.DSN("rosters")} {
		t.Run(name, func(t *testing.T) {
			s, err := rosterstore.Open(ctx, spec)
			require.NoError(t, err)
			defer s.Close()
			var mailboxes []wavefile.Mailbox
			for i := range 1200 {
				mailboxes = append(mailboxes, wavefile.Mailbox{Index: i, Key: "k" + string(rune('a'+i%26)), Address: "a@trust.example", Org: "trust", DisplayName: "Ann O'Neil, \"A\""})
			}
			require.NoError(t, s.Write(ctx, "night-1", mailboxes))
			assert.ErrorIs(t, s.Write(ctx, "night-1", mailboxes), fs.ErrExist)

			page, err := s.Rows(ctx, "night-1", 500, 1000)
			require.NoError(t, err)
			assert.Equal(t, mailboxes[500:1000], page)
			got, err := s.Get(ctx, "night-1", []int{7, 3, 1199})
			require.NoError(t, err)
			assert.Equal(t, []wavefile.Mailbox{mailboxes[7], mailboxes[3], mailboxes[1199]}, got)
			all, err := s.All(ctx, "night-1")
			require.NoError(t, err)
			assert.Equal(t, mailboxes, all)
			_, err = s.Get(ctx, "night-1", []int{1200})
			assert.ErrorIs(t, err, wavefile.ErrOutOfRange)
			_, err = s.Rows(ctx, "../etc", 0, 1)
			assert.ErrorContains(t, err, "a wave ID is")
			_, err = s.Rows(ctx, "no-such-wave", 0, 1)
			assert.ErrorIs(t, err, fs.ErrNotExist)

			require.NoError(t, s.Remove(ctx, "night-1"))
			require.NoError(t, s.Remove(ctx, "night-1"))
			_, err = s.All(ctx, "night-1")
			assert.ErrorIs(t, err, fs.ErrNotExist)

			require.NoError(t, s.CheckFingerprint(ctx, "0123456789abcdef"))
			require.NoError(t, s.CheckFingerprint(ctx, "0123456789abcdef"))
			assert.ErrorContains(t, s.CheckFingerprint(ctx, "fedcba9876543210"), "this deployment began with 0123456789abcdef")
		})
	}
}
