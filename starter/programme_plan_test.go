package main

import (
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeEstateCSV writes an estate of n mailboxes of 10 GB, but for a 600 GB
// one (more than 0.45 MB/s can move between a notice and a day before T)
// and every tenth without a size.
func writeEstateCSV(t *testing.T, n int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("address,org,display_name,size_bytes\n")
	for i := range n {
		size := "10000000000"
		switch {
		case i == 0:
			size = "600000000000"
		case i%10 == 5:
			size = ""
		}
		fmt.Fprintf(&b, "user%04d@trust.nhs.example,trust,User %d,%s\n", i, i, size)
	}
	path := filepath.Join(t.TempDir(), "all.csv")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
	return path
}

// TestProgrammePlanSaysWhatCannotBeDone: three weeknights of 100 from a
// Monday, pre-staged at Exchange Online's budget: the peak, the leads,
// the one mailbox too large for its lead named by reason (its key, never
// its address, in the CSV); a tenant limit of 2 MB/s (4 copies at once)
// (6.2 h a 10 GB pass) leaves the rest too little room; copying at T, the
// 10 GB mailboxes still fit a night's window and the large one does not.
func TestProgrammePlanSaysWhatCannotBeDone(t *testing.T) {
	est := writeEstateCSV(t, 300)
	dir := t.TempDir()
	out, code := runStarter(t, "programme", "plan", "--estate", est, "--from", "2027-01-04", "--nights", "3",
		"--weeknight-size", "100", "--weekend-size", "0", "--copy-at-t",
		"--csv-mailboxes", filepath.Join(dir, "mailboxes.csv"), "--csv-nights", filepath.Join(dir, "nights.csv"))
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "plan: 3 nights from 2027-01-04, 300 mailboxes (30 sizes assumed 1 GB), 3.3 TB")
	pre, atT, ok := strings.Cut(out, "copy at T:")
	require.True(t, ok, out)
	assert.Contains(t, pre, "per-mailbox pace 0.45 MB/s; no tenant limit")
	assert.Contains(t, pre, "mailboxes that cannot be done: 1; TooLargeForLeadTime 1")
	assert.Contains(t, pre, "peak: ")
	assert.Contains(t, pre, "nights that cannot be done: 0 of 3")
	assert.Contains(t, atT, "mailboxes that cannot be done: 1; TooLargeForLeadTime 1", "a 10 GB copy (6.2 h) fits a 12 h night")
	assert.NotContains(t, out, "@", "no address printed")

	rows := readCSV(t, filepath.Join(dir, "mailboxes.csv"))
	require.Len(t, rows, 301)
	assert.Equal(t, []string{"key", "bytes", "estimated", "t", "bulk_start", "bulk_end", "lead_hours", "problem"}, rows[0])
	var late []string
	for _, r := range rows[1:] {
		assert.NotContains(t, r[0], "@")
		if r[7] != "" {
			late = append(late, r[1]+" "+r[7])
		}
	}
	require.Len(t, late, 1)
	assert.Contains(t, late[0], "600000000000 TooLargeForLeadTime")
	nights := readCSV(t, filepath.Join(dir, "nights.csv"))
	require.Len(t, nights, 4)
	assert.Equal(t, "2027-01-04T20:00:00Z", nights[1][0])

	// 2 MB/s for the tenant: 4 copies at once, 6.2 h each: 1,850 h of
	// passes for 4 lanes over 13 days (1,250 h).
	out, code = runStarter(t, "programme", "plan", "--estate", est, "--from", "2027-01-04", "--nights", "3",
		"--weeknight-size", "100", "--weekend-size", "0", "--tenant-rate", "2")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "tenant limit 2 MB/s: 4 copies at once")
	assert.Contains(t, out, "TenantLimitTooLow")
	assert.NotContains(t, out, "nights that cannot be done: 0 of 3")

	out, code = runStarter(t, "programme", "plan", "--estate", est, "--from", "4 January", "--nights", "3")
	assert.NotEqual(t, 0, code)
	assert.Contains(t, out, "--from")
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	return rows
}
