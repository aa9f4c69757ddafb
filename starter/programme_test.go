package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/identity"
	"mailwave/roster/estate"
)

// inProcess runs the starter in this process with the test's key secret
// (and MAILWAVE_WAVES_DIR unset: each test names its store), returning
// what it printed and its error.
func inProcess(t *testing.T, args ...string) (string, error) {
	t.Helper()
	t.Setenv("MAILWAVE_KEY_SECRET", testSecret)
	t.Setenv("MAILWAVE_WAVES_DIR", "")
	var out bytes.Buffer
	root := newRootCmd(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// estateCSV lists n mailboxes of each org, from index from.
func estateCSV(orgs []string, from, n int) string {
	var b strings.Builder
	b.WriteString("address,org,display_name,size_bytes\n")
	for _, org := range orgs {
		for i := from; i < from+n; i++ {
			fmt.Fprintf(&b, "user%03d@%s.example,%s,\"User %d, of %s\",%d\n", i, org, org, i, org, 1000*i)
		}
	}
	return b.String()
}

func openEstate(t *testing.T, spec string) estate.Store {
	t.Helper()
	st, err := estate.Open(context.Background(), spec)
	require.NoError(t, err)
	t.Cleanup(st.Close)
	return st
}

func TestProgrammeImport(t *testing.T) {
	waves := t.TempDir()
	first := writeCSV(t, "all.csv", estateCSV([]string{"trust-a", "trust-b"}, 0, 10))
	out, err := inProcess(t, "programme", "import", first, "--waves-dir", waves)
	require.NoError(t, err, out)
	assert.Contains(t, out, "imported all.csv (20 mailboxes) into the estate in "+filepath.Join(waves, "estate")+": 20 added, 0 updated, 0 unchanged, 0 leavers, 0 returned")
	assert.Contains(t, out, `2 new organisations, pilots until "starter org ready": trust-a, trust-b`)

	// The estate holds the keys the deployment's secret makes, and the
	// sizes; the roster store has the secret's fingerprint.
	keyer, err := identity.NewKeyer([]byte(testSecret))
	require.NoError(t, err)
	st := openEstate(t, waves)
	require.NoError(t, st.SetOrg(context.Background(), estate.Org{Name: "trust-a", State: estate.Ready, By: "test", Since: time.Now()}))
	night, err := st.Choose(context.Background(), estate.Choice{Night: "n1", N: 1, Seed: 1}, time.Now())
	require.NoError(t, err)
	require.Len(t, night.Mailboxes, 1)
	m := night.Mailboxes[0]
	k, err := keyer.Key(m.Address)
	require.NoError(t, err)
	assert.Equal(t, k, m.Key)
	var i int
	_, err = fmt.Sscanf(m.Address, "user%03d@", &i)
	require.NoError(t, err)
	assert.Equal(t, int64(1000*i), m.SizeBytes)
	assert.FileExists(t, filepath.Join(waves, ".key-secret-fingerprint"))

	// Again, as staff join and leave: trust-a's 0-4 leave, 10-14 join,
	// trust-c is new; then 0-1 return.
	second := writeCSV(t, "all.csv", estateCSV([]string{"trust-a"}, 5, 10)+
		strings.TrimPrefix(estateCSV([]string{"trust-b"}, 0, 10), "address,org,display_name,size_bytes\n")+
		"new@trust-c.example,trust-c,New,\n")
	out, err = inProcess(t, "programme", "import", second, "--waves-dir", waves)
	require.NoError(t, err, out)
	assert.Contains(t, out, "(21 mailboxes)")
	assert.Contains(t, out, ": 6 added, 0 updated, 15 unchanged, 5 leavers, 0 returned")
	assert.Contains(t, out, `1 new organisations, pilots until "starter org ready": trust-c`)
	third := writeCSV(t, "all.csv", strings.Replace(estateCSV([]string{"trust-a"}, 0, 15), "User 7, of trust-a", "Seven", 1))
	out, err = inProcess(t, "programme", "import", third, "--waves-dir", waves)
	require.NoError(t, err, out)
	assert.Contains(t, out, ": 0 added, 1 updated, 9 unchanged, 11 leavers, 5 returned")
	assert.NotContains(t, out, "new organisations")
}

func TestProgrammeImportRefuses(t *testing.T) {
	waves := t.TempDir()
	bad := writeCSV(t, "all.csv", "address,org,size_mb\n"+
		"jo@trust-a.example,trust-a,1\n"+
		"Jo@Trust-A.example,trust-a,1\n"+ // a duplicate of line 2
		"sam@trust-a.example,,2\n"+ // no org
		"ann@trust-a.example,trust-a,lots\n") // no size
	out, err := inProcess(t, "programme", "import", bad, "--waves-dir", waves)
	require.Error(t, err)
	for _, want := range []string{"all.csv line 3: the address is a duplicate of line 2", "all.csv line 4: the org is empty", "all.csv line 5: the size is not a size"} {
		assert.Contains(t, err.Error(), want)
	}
	assert.NotContains(t, err.Error()+out, "trust-a.example", "rows are named by line, never by address")
	_, err = os.Stat(filepath.Join(waves, "estate"))
	assert.ErrorIs(t, err, os.ErrNotExist, "nothing imported")

	noOrg := writeCSV(t, "all.csv", "address,display_name\njo@trust-a.example,Jo\n")
	_, err = inProcess(t, "programme", "import", noOrg, "--waves-dir", waves)
	assert.ErrorContains(t, err, `all.csv line 1: the header has no "org" column`)

	// The store began with another key secret: refused before anything.
	good := writeCSV(t, "all.csv", estateCSV([]string{"trust-a"}, 0, 2))
	require.NoError(t, os.WriteFile(filepath.Join(waves, ".key-secret-fingerprint"), []byte("0123456789abcdef\n"), 0o644))
	_, err = inProcess(t, "programme", "import", good, "--waves-dir", waves)
	assert.ErrorContains(t, err, "this deployment began with 0123456789abcdef")
	_, err = os.Stat(filepath.Join(waves, "estate"))
	assert.ErrorIs(t, err, os.ErrNotExist, "nothing imported")

	_, err = inProcess(t, "programme", "import", "--waves-dir", waves)
	assert.ErrorContains(t, err, "accepts 1 arg(s)")
}

func TestProgrammeStatus(t *testing.T) {
	ctx := context.Background()
	waves := t.TempDir()
	out, err := inProcess(t, "programme", "status", "--waves-dir", waves)
	require.NoError(t, err)
	assert.Contains(t, out, "is empty")

	_, err = inProcess(t, "programme", "import", writeCSV(t, "all.csv", estateCSV([]string{"trust-a", "trust-b", "trust-c"}, 0, 100)), "--waves-dir", waves)
	require.NoError(t, err)
	out, err = inProcess(t, "programme", "status", "--waves-dir", waves)
	require.NoError(t, err)
	assert.Contains(t, out, "no pace yet")

	// A pilot of trust-c (left out of the pace); trust-a ready, trust-b
	// held; two nights of trust-a, one of them ended.
	st := openEstate(t, waves)
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	p, err := st.Choose(ctx, estate.Choice{Night: "pilot-trust-c", N: 20, Seed: 1, Orgs: []string{"trust-c"}}, t0)
	require.NoError(t, err)
	require.NoError(t, st.Record(ctx, p.Name, outcomes(p, estate.Migrated)))
	require.NoError(t, st.SetOrg(ctx, estate.Org{Name: "trust-a", State: estate.Ready, By: "test", Since: t0}))
	require.NoError(t, st.SetOrg(ctx, estate.Org{Name: "trust-b", State: estate.Held, Reason: "merger", By: "test", Since: t0}))
	n1, err := st.Choose(ctx, estate.Choice{Night: "2026-12-21", N: 30, Seed: 1221}, t0)
	require.NoError(t, err)
	o := outcomes(n1, estate.Migrated)
	o[n1.Mailboxes[0].Key], o[n1.Mailboxes[1].Key] = estate.NeedsSupport, estate.Deferred
	require.NoError(t, st.Record(ctx, n1.Name, o))
	_, err = st.Choose(ctx, estate.Choice{Night: "2026-12-22", N: 20, Seed: 1222}, t0.Add(24*time.Hour))
	require.NoError(t, err)

	out, err = inProcess(t, "programme", "status", "--waves-dir", waves)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 6, out)
	assert.Equal(t, []string{"ORG", "STATE", "TOTAL", "MIGRATED", "NEEDS", "SUPPORT", "CHOSEN", "(IN", "FLIGHT)", "REMAINING", "DEFERRED"}, strings.Fields(lines[0]))
	assert.Equal(t, []string{"trust-a", "ready", "100", "28", "1", "20", "51", "1"}, strings.Fields(lines[1]))
	assert.Equal(t, []string{"trust-b", "held", "100", "0", "0", "0", "100", "0"}, strings.Fields(lines[2]))
	assert.Equal(t, []string{"trust-c", "pilot", "100", "20", "0", "0", "80", "0"}, strings.Fields(lines[3]))
	assert.Equal(t, []string{"TOTAL", "-", "300", "48", "1", "20", "231", "1"}, strings.Fields(lines[4]))
	// 231 remaining at (30+20)/2 = 25 a night: 10 nights after the 22nd.
	assert.Equal(t, "projected last night at the current pace: 2027-01-01 (231 remaining at 25 a night, the mean of the last 2 nights chosen to 2026-12-22)", lines[5])

	csvPath := filepath.Join(t.TempDir(), "status.csv")
	out, err = inProcess(t, "programme", "status", "--waves-dir", waves, "--csv", csvPath)
	require.NoError(t, err)
	assert.Contains(t, out, "TOTAL", "the table too")
	f, err := os.Open(csvPath)
	require.NoError(t, err)
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	assert.Equal(t, [][]string{
		{"org", "state", "total", "migrated", "needs_support", "chosen", "remaining", "deferred"},
		{"trust-a", "ready", "100", "28", "1", "20", "51", "1"},
		{"trust-b", "held", "100", "0", "0", "0", "100", "0"},
		{"trust-c", "pilot", "100", "20", "0", "0", "80", "0"},
		{"TOTAL", "", "300", "48", "1", "20", "231", "1"},
	}, recs)
	out, err = inProcess(t, "programme", "status", "--waves-dir", waves, "--csv", "-")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(out, "org,state,total,"), out)
	assert.NotContains(t, out, "projected")

	out, err = inProcess(t, "programme", "status", "--waves-dir", waves, "-o", "json")
	require.NoError(t, err)
	var got programmeStatus
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	assert.Len(t, got.Orgs, 3)
	assert.Equal(t, 231, got.Total.Remaining)
	assert.Equal(t, pace{Nights: 2, PerNight: 25, LastNight: "2026-12-22", Remaining: 231, Projected: "2027-01-01"}, got.Pace)
}

// outcomes gives every mailbox of a night the outcome o.
func outcomes(n estate.Night, o estate.Outcome) map[string]estate.Outcome {
	out := map[string]estate.Outcome{}
	for _, m := range n.Mailboxes {
		out[m.Key] = o
	}
	return out
}

func TestProjectPace(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)
	var nights []estate.NightCounts
	for i := range 9 {
		nights = append(nights, estate.NightCounts{Name: fmt.Sprintf("2026-12-%02d", 15+i), Chosen: 100 * (i + 1), ChosenAt: at.AddDate(0, 0, i)})
	}
	// The last 7 chosen: 300..900, 600 a night; pilots and empty nights
	// aside.
	nights = append(nights, estate.NightCounts{Name: "pilot-x", Chosen: 20, Orgs: []string{"x"}}, estate.NightCounts{Name: "2026-12-24"})
	assert.Equal(t, pace{Nights: 7, PerNight: 600, LastNight: "2026-12-23", Remaining: 6001, Projected: "2027-01-03"}, projectPace(nights, 6001))
	assert.Equal(t, "2026-12-23", projectPace(nights, 0).Projected, "nothing remains: the last night chosen is the last")
	assert.Equal(t, pace{Remaining: 5}, projectPace(nights[9:], 5), "no pace yet")

	// A night named otherwise counts from the day it was chosen.
	other := []estate.NightCounts{{Name: "wave-7", Chosen: 10, ChosenAt: at}}
	assert.Equal(t, "2026-12-04", projectPace(other, 25).Projected)
}
