package estate_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/roster/estate"
	"mailwave/testkit/postgres"
)

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// mailboxes makes n mailboxes of org, keys <org>-0000 on.
func mailboxes(org string, n int) []estate.Mailbox {
	out := make([]estate.Mailbox, n)
	for i := range out {
		out[i] = estate.Mailbox{
			Key:         fmt.Sprintf("%s-%04d", org, i),
			Address:     fmt.Sprintf("user%04d@%s.example", i, org),
			Org:         org,
			DisplayName: fmt.Sprintf("User %d, \"of\" %s", i, org),
		}
	}
	return out
}

// opener opens an empty estate, and says the spec it is opened from.
type opener func(t *testing.T) (estate.Store, string)

func openSpec(t *testing.T, spec string) estate.Store {
	s, err := estate.Open(context.Background(), spec)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

// suite is one promise of the estate, kept by both stores.
type suite struct {
	name string
	test func(t *testing.T, open opener)
}

// TestStores runs every promise against the directory store and
// PostgreSQL (one server, a fresh database each), then checks that both
// choose the same night from the same estate and seed.
func TestStores(t *testing.T) {
	pg := postgres.StartT(t)
	var dbs int
	openers := map[string]opener{
		"directory": func(t *testing.T) (estate.Store, string) {
			spec := t.TempDir()
			return openSpec(t, spec), spec
		},
		"postgres": func(t *testing.T) (estate.Store, string) {
			dbs++
			db := fmt.Sprintf("estate%d", dbs)
			require.NoError(t, pg.Exec(context.Background(), "postgres", "CREATE DATABASE "+db))
			return openSpec(t, pg.DSN(db)), pg.DSN(db)
		},
	}
	for _, kind := range []string{"directory", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			for _, c := range suites {
				t.Run(c.name, func(t *testing.T) { c.test(t, openers[kind]) })
			}
		})
	}
	t.Run("same night from both", func(t *testing.T) {
		var nights []estate.Night
		for _, kind := range []string{"directory", "postgres"} {
			s, _ := openers[kind](t)
			ctx := context.Background()
			_, err := s.Import(ctx, append(mailboxes("alpha", 300), mailboxes("beta", 300)...), t0)
			require.NoError(t, err)
			require.NoError(t, s.SetOrg(ctx, estate.Org{Name: "alpha", State: estate.Ready, By: "ops", Since: t0}))
			n, err := s.Choose(ctx, estate.Choice{Night: "2026-12-21", N: 40, Seed: 1221}, t0)
			require.NoError(t, err)
			nights = append(nights, n)
		}
		assert.Equal(t, nights[0], nights[1])
	})
}

var suites = []suite{
	{"import and re-import", testImport},
	{"organisation states", testOrgStates},
	{"choose is reproducible from the seed", testChooseReproducible},
	{"choose takes ready organisations only", testChooseReadyOnly},
	{"never one chosen twice across nights", testNeverTwice},
	{"choose is idempotent per night", testChooseIdempotent},
	{"choose with orgs: a pilot", testChoosePilot},
	{"record", testRecord},
	{"counts", testCounts},
	{"two chooses at once", testConcurrentChooses},
	{"reserve for a night", testReserve},
}

func testImport(t *testing.T, open opener) {
	ctx := context.Background()
	s, _ := open(t)
	first := append(mailboxes("alpha", 10), mailboxes("beta", 5)...)
	first[0].SizeBytes = 5_000_000
	res, err := s.Import(ctx, first, t0)
	require.NoError(t, err)
	assert.Equal(t, estate.ImportResult{Added: 15, NewOrgs: []string{"alpha", "beta"}}, res)
	orgs, err := s.Orgs(ctx)
	require.NoError(t, err)
	assert.Equal(t, []estate.Org{
		{Name: "alpha", State: estate.Pilot, Reason: "new in an import", By: "mailwave", Since: t0},
		{Name: "beta", State: estate.Pilot, Reason: "new in an import", By: "mailwave", Since: t0},
	}, orgs)

	// The same again changes nothing.
	res, err = s.Import(ctx, first, t0.Add(time.Hour))
	require.NoError(t, err)
	assert.Equal(t, estate.ImportResult{Unchanged: 15}, res)

	// Choose and migrate two of alpha's, then alpha-0001 leaves and comes
	// back; alpha-0002 leaves migrated, alpha-0009 and beta-0004 leave
	// from the pool, gamma joins; alpha-0003 changes its name, alpha-0000
	// is imported without its size (kept), alpha-0004 with a new one.
	require.NoError(t, s.SetOrg(ctx, estate.Org{Name: "alpha", State: estate.Ready, By: "ops", Since: t0}))
	night, err := s.Choose(ctx, estate.Choice{Night: "n1", N: 10, Seed: 1}, t0)
	require.NoError(t, err)
	require.Len(t, night.Mailboxes, 10)
	require.NoError(t, s.Record(ctx, "n1", map[string]estate.Outcome{"alpha-0001": estate.Migrated, "alpha-0002": estate.Migrated}))

	second := slices.Clone(first)
	second[0].SizeBytes = 0
	second[3].DisplayName = "Renamed"
	second[4].SizeBytes = 7_000_000
	second = slices.DeleteFunc(second, func(m estate.Mailbox) bool {
		return m.Key == "alpha-0001" || m.Key == "alpha-0002" || m.Key == "alpha-0009" || m.Key == "beta-0004"
	})
	second = append(second, mailboxes("gamma", 3)...)
	res, err = s.Import(ctx, second, t0.Add(24*time.Hour))
	require.NoError(t, err)
	assert.Equal(t, estate.ImportResult{Added: 3, Updated: 2, Unchanged: 9, Left: 4, NewOrgs: []string{"gamma"}}, res)

	third := append(slices.Clone(second), first[1], first[9])
	res, err = s.Import(ctx, third, t0.Add(48*time.Hour))
	require.NoError(t, err)
	assert.Equal(t, estate.ImportResult{Unchanged: 14, Returned: 2, Left: 0}, res, "alpha-0002 and beta-0004 stay leavers")

	// Nothing migrated is forgotten: the night keeps its mailboxes, the
	// leaver alpha-0002 among them, with what was done.
	got, err := s.Night(ctx, "n1")
	require.NoError(t, err)
	byKey := map[string]estate.Mailbox{}
	for _, m := range got.Mailboxes {
		byKey[m.Key] = m
	}
	assert.Equal(t, estate.Mailbox{Key: "alpha-0002", Address: "user0002@alpha.example", Org: "alpha",
		DisplayName: "User 2, \"of\" alpha", Left: true, Night: "n1", Outcome: estate.Migrated}, byKey["alpha-0002"])
	assert.Equal(t, estate.Migrated, byKey["alpha-0001"].Outcome)
	assert.False(t, byKey["alpha-0001"].Left)
	assert.Equal(t, int64(5_000_000), byKey["alpha-0000"].SizeBytes, "a size not known keeps the one stored")
	assert.Equal(t, int64(7_000_000), byKey["alpha-0004"].SizeBytes)
	assert.Equal(t, "Renamed", byKey["alpha-0003"].DisplayName)

	counts, err := s.Counts(ctx)
	require.NoError(t, err)
	assert.Equal(t, []estate.OrgCounts{
		{Org: "alpha", State: estate.Ready, Total: 9, Migrated: 2, Chosen: 8},
		{Org: "beta", State: estate.Pilot, Total: 4, Remaining: 4},
		{Org: "gamma", State: estate.Pilot, Total: 3, Remaining: 3},
	}, counts)

	// Refused: nothing, a mailbox without organisation, a key twice.
	_, err = s.Import(ctx, nil, t0)
	assert.ErrorContains(t, err, "every mailbox of the estate a leaver")
	bad := mailboxes("alpha", 2)
	bad[1].Org = ""
	_, err = s.Import(ctx, bad, t0)
	assert.ErrorContains(t, err, "mailbox alpha-0001 has no organisation")
	bad = mailboxes("alpha", 2)
	bad[1].Key = bad[0].Key
	_, err = s.Import(ctx, bad, t0)
	assert.ErrorContains(t, err, "the same key alpha-0000")
	assert.NotContains(t, err.Error(), "@", "an error names keys, never addresses")
}

func testOrgStates(t *testing.T, open opener) {
	ctx := context.Background()
	s, _ := open(t)
	_, err := s.Import(ctx, mailboxes("alpha", 3), t0)
	require.NoError(t, err)
	held := estate.Org{Name: "alpha", State: estate.Held, Reason: "the trust's IT asked", By: "jo", Since: t0.Add(time.Hour)}
	require.NoError(t, s.SetOrg(ctx, held))
	orgs, err := s.Orgs(ctx)
	require.NoError(t, err)
	assert.Equal(t, []estate.Org{held}, orgs)

	assert.ErrorIs(t, s.SetOrg(ctx, estate.Org{Name: "nobody", State: estate.Ready}), estate.ErrUnknownOrg)
	assert.ErrorContains(t, s.SetOrg(ctx, estate.Org{Name: "alpha", State: estate.Held}), "holding it needs a reason")
	assert.ErrorContains(t, s.SetOrg(ctx, estate.Org{Name: "alpha", State: "gone"}), "is not a state")
	orgs, err = s.Orgs(ctx)
	require.NoError(t, err)
	assert.Equal(t, []estate.Org{held}, orgs, "a refused change changes nothing")
}

// ready imports alpha (ready, 50), beta (pilot, 50) and gamma (held, 50).
func ready(t *testing.T, s estate.Store) {
	ctx := context.Background()
	_, err := s.Import(ctx, slices.Concat(mailboxes("alpha", 50), mailboxes("beta", 50), mailboxes("gamma", 50)), t0)
	require.NoError(t, err)
	require.NoError(t, s.SetOrg(ctx, estate.Org{Name: "alpha", State: estate.Ready, By: "ops", Since: t0}))
	require.NoError(t, s.SetOrg(ctx, estate.Org{Name: "gamma", State: estate.Held, Reason: "merger", By: "ops", Since: t0}))
}

func keys(n estate.Night) []string {
	out := make([]string, len(n.Mailboxes))
	for i, m := range n.Mailboxes {
		out[i] = m.Key
	}
	return out
}

func testChooseReproducible(t *testing.T, open opener) {
	ctx := context.Background()
	a, _ := open(t)
	b, _ := open(t)
	ready(t, a)
	// b holds the same estate, imported in another order.
	_, err := b.Import(ctx, slices.Concat(mailboxes("gamma", 50), mailboxes("beta", 50), mailboxes("alpha", 50)), t0)
	require.NoError(t, err)
	require.NoError(t, b.SetOrg(ctx, estate.Org{Name: "alpha", State: estate.Ready, By: "ops", Since: t0}))

	na, err := a.Choose(ctx, estate.Choice{Night: "2026-12-21", N: 20, Seed: 42}, t0)
	require.NoError(t, err)
	nb, err := b.Choose(ctx, estate.Choice{Night: "2026-12-21", N: 20, Seed: 42}, t0)
	require.NoError(t, err)
	assert.Equal(t, keys(na), keys(nb), "the same estate and seed choose the same, in the same order")
	assert.Equal(t, int64(42), na.Seed)
	assert.Equal(t, t0, na.ChosenAt)
	assert.Len(t, na.Mailboxes, 20)

	other, _ := open(t)
	ready(t, other)
	nc, err := other.Choose(ctx, estate.Choice{Night: "2026-12-21", N: 20, Seed: 43}, t0)
	require.NoError(t, err)
	assert.NotEqual(t, keys(na), keys(nc), "another seed, another sample")
	sorted := slices.Sorted(slices.Values(keys(na)))
	assert.NotEqual(t, sorted, keys(na), "in the order chosen, not the pool's")
}

func testChooseReadyOnly(t *testing.T, open opener) {
	ctx := context.Background()
	s, _ := open(t)
	ready(t, s)
	n, err := s.Choose(ctx, estate.Choice{Night: "n1", N: 1000, Seed: 7}, t0)
	require.NoError(t, err)
	assert.Len(t, n.Mailboxes, 50, "only alpha's 50: fewer than asked when the pool is smaller")
	for _, m := range n.Mailboxes {
		assert.Equal(t, "alpha", m.Org)
		assert.Equal(t, "n1", m.Night)
		assert.Empty(t, m.Outcome)
		assert.NotEmpty(t, m.Address)
	}
	n2, err := s.Choose(ctx, estate.Choice{Night: "n2", N: 10, Seed: 8}, t0)
	require.NoError(t, err)
	assert.Empty(t, n2.Mailboxes, "alpha is all chosen; beta is a pilot, gamma held")
	_, err = s.Choose(ctx, estate.Choice{Night: "../n3", N: 10, Seed: 8}, t0)
	assert.ErrorContains(t, err, "a night's name is")
	_, err = s.Choose(ctx, estate.Choice{Night: "n3", N: 0, Seed: 8}, t0)
	assert.ErrorContains(t, err, "at least 1")
}

func testNeverTwice(t *testing.T, open opener) {
	ctx := context.Background()
	s, _ := open(t)
	ready(t, s)
	seen := map[string]string{}
	for i := range 6 {
		name := fmt.Sprintf("2026-12-%02d", 21+i)
		n, err := s.Choose(ctx, estate.Choice{Night: name, N: 9, Seed: int64(i)}, t0.Add(time.Duration(i)*time.Hour))
		require.NoError(t, err)
		for _, k := range keys(n) {
			if was, dup := seen[k]; dup {
				t.Errorf("%s chosen for %s and %s", k, was, name)
			}
			seen[k] = name
		}
	}
	assert.Len(t, seen, 50, "9+9+9+9+9+5: the whole pool, once each")
	nights, err := s.Nights(ctx)
	require.NoError(t, err)
	require.Len(t, nights, 6)
	assert.Equal(t, "2026-12-21", nights[0].Name)
	assert.Equal(t, estate.NightCounts{Name: "2026-12-26", Seed: 5, ChosenAt: t0.Add(5 * time.Hour), Chosen: 5, InFlight: 5}, nights[5])
}

func testChooseIdempotent(t *testing.T, open opener) {
	ctx := context.Background()
	s, _ := open(t)
	ready(t, s)
	first, err := s.Choose(ctx, estate.Choice{Night: "n1", N: 10, Seed: 1}, t0)
	require.NoError(t, err)
	again, err := s.Choose(ctx, estate.Choice{Night: "n1", N: 30, Seed: 2, Orgs: []string{"beta"}}, t0.Add(time.Hour))
	require.NoError(t, err)
	assert.Equal(t, first, again, "a night chosen is returned whatever is asked")
	read, err := s.Night(ctx, "n1")
	require.NoError(t, err)
	assert.Equal(t, first, read)
	_, err = s.Night(ctx, "n2")
	assert.ErrorIs(t, err, estate.ErrUnknownNight)
	counts, err := s.Counts(ctx)
	require.NoError(t, err)
	assert.Equal(t, 10, counts[0].Chosen)
}

func testChoosePilot(t *testing.T, open opener) {
	ctx := context.Background()
	s, _ := open(t)
	ready(t, s)
	n, err := s.Choose(ctx, estate.Choice{Night: "pilot-beta-1", N: 20, Seed: 3, Orgs: []string{"beta", "gamma", "beta"}}, t0)
	require.NoError(t, err)
	assert.Len(t, n.Mailboxes, 20)
	assert.Equal(t, []string{"beta", "gamma"}, n.Orgs, "recorded: the night was a pilot of beta and gamma")
	for _, m := range n.Mailboxes {
		assert.Contains(t, []string{"beta", "gamma"}, m.Org, "a pilot takes its organisations whatever their state, and no other")
	}
	_, err = s.Choose(ctx, estate.Choice{Night: "pilot-x", N: 20, Seed: 3, Orgs: []string{"nobody"}}, t0)
	assert.ErrorIs(t, err, estate.ErrUnknownOrg)
	_, err = s.Night(ctx, "pilot-x")
	assert.ErrorIs(t, err, estate.ErrUnknownNight, "a refused choice chooses nothing")
	nights, err := s.Nights(ctx)
	require.NoError(t, err)
	require.Len(t, nights, 1)
	assert.Equal(t, []string{"beta", "gamma"}, nights[0].Orgs)
}

func testRecord(t *testing.T, open opener) {
	ctx := context.Background()
	s, _ := open(t)
	ready(t, s)
	n, err := s.Choose(ctx, estate.Choice{Night: "n1", N: 50, Seed: 1}, t0)
	require.NoError(t, err)
	k := keys(n)
	outcomes := map[string]estate.Outcome{k[0]: estate.Migrated, k[1]: estate.NeedsSupport, k[2]: estate.Deferred, k[3]: estate.Deferred}
	require.NoError(t, s.Record(ctx, "n1", outcomes))
	require.NoError(t, s.Record(ctx, "n1", outcomes), "the same again changes nothing")

	counts, err := s.Counts(ctx)
	require.NoError(t, err)
	assert.Equal(t, estate.OrgCounts{Org: "alpha", State: estate.Ready, Total: 50, Migrated: 1, NeedsSupport: 1, Chosen: 46, Remaining: 2, Deferred: 2}, counts[0])

	// The deferred are back in the pool: the next night takes them (and
	// only them), and they stay deferred on n1.
	n2, err := s.Choose(ctx, estate.Choice{Night: "n2", N: 10, Seed: 2}, t0)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{k[2], k[3]}, keys(n2))
	read, err := s.Night(ctx, "n1")
	require.NoError(t, err)
	assert.Equal(t, estate.Deferred, read.Mailboxes[2].Outcome)
	assert.Equal(t, estate.NeedsSupport, read.Mailboxes[1].Outcome)
	require.NoError(t, s.Record(ctx, "n2", map[string]estate.Outcome{k[2]: estate.Deferred}))
	counts, err = s.Counts(ctx)
	require.NoError(t, err)
	assert.Equal(t, estate.OrgCounts{Org: "alpha", State: estate.Ready, Total: 50, Migrated: 1, NeedsSupport: 1, Chosen: 47, Remaining: 1, Deferred: 3}, counts[0])

	// Support mended k[1]: needs_support may become migrated.
	require.NoError(t, s.Record(ctx, "n1", map[string]estate.Outcome{k[1]: estate.Migrated}))

	// Refused, and nothing of a refused Record is kept.
	err = s.Record(ctx, "n1", map[string]estate.Outcome{k[4]: estate.Migrated, k[2]: estate.Migrated})
	assert.ErrorContains(t, err, "recorded deferred already; it cannot become migrated")
	err = s.Record(ctx, "n1", map[string]estate.Outcome{k[4]: estate.Migrated, k[0]: estate.Deferred})
	assert.ErrorContains(t, err, "recorded migrated already; it cannot become deferred")
	err = s.Record(ctx, "n1", map[string]estate.Outcome{k[4]: estate.Migrated, "beta-0001": estate.Migrated})
	assert.ErrorContains(t, err, "mailbox \"beta-0001\" was not chosen for it")
	err = s.Record(ctx, "n1", map[string]estate.Outcome{k[4]: "lost"})
	assert.ErrorContains(t, err, "is not an outcome")
	assert.ErrorIs(t, s.Record(ctx, "n9", map[string]estate.Outcome{k[4]: estate.Migrated}), estate.ErrUnknownNight)
	read, err = s.Night(ctx, "n1")
	require.NoError(t, err)
	assert.Empty(t, read.Mailboxes[4].Outcome)

	nights, err := s.Nights(ctx)
	require.NoError(t, err)
	assert.Equal(t, []estate.NightCounts{
		{Name: "n1", Seed: 1, ChosenAt: t0, Chosen: 50, Migrated: 2, Deferred: 2, InFlight: 46},
		{Name: "n2", Seed: 2, ChosenAt: t0, Chosen: 2, Deferred: 1, InFlight: 1},
	}, nights)
}

func testCounts(t *testing.T, open opener) {
	ctx := context.Background()
	s, _ := open(t)
	ready(t, s)
	n, err := s.Choose(ctx, estate.Choice{Night: "n1", N: 10, Seed: 1}, t0)
	require.NoError(t, err)
	p, err := s.Choose(ctx, estate.Choice{Night: "pilot-beta", N: 5, Seed: 1, Orgs: []string{"beta"}}, t0)
	require.NoError(t, err)
	k, pk := keys(n), keys(p)
	require.NoError(t, s.Record(ctx, "n1", map[string]estate.Outcome{k[0]: estate.Migrated, k[1]: estate.Migrated, k[2]: estate.NeedsSupport, k[3]: estate.Deferred}))
	require.NoError(t, s.Record(ctx, "pilot-beta", map[string]estate.Outcome{pk[0]: estate.Migrated, pk[1]: estate.Deferred}))
	// One of alpha's in the pool leaves.
	var pool string
	for _, m := range mailboxes("alpha", 50) {
		if !slices.Contains(k, m.Key) {
			pool = m.Key
			break
		}
	}
	all := slices.DeleteFunc(slices.Concat(mailboxes("alpha", 50), mailboxes("beta", 50), mailboxes("gamma", 50)),
		func(m estate.Mailbox) bool { return m.Key == pool })
	_, err = s.Import(ctx, all, t0)
	require.NoError(t, err)
	counts, err := s.Counts(ctx)
	require.NoError(t, err)
	assert.Equal(t, []estate.OrgCounts{
		{Org: "alpha", State: estate.Ready, Total: 49, Migrated: 2, NeedsSupport: 1, Chosen: 6, Remaining: 40, Deferred: 1},
		{Org: "beta", State: estate.Pilot, Total: 50, Migrated: 1, Chosen: 3, Remaining: 46, Deferred: 1},
		{Org: "gamma", State: estate.Held, Total: 50, Remaining: 50},
	}, counts)
}

// testConcurrentChooses chooses the same night twice at once, and two
// nights at once, each through a store of its own (four starters or
// workers): one night, and never one mailbox in both.
func testConcurrentChooses(t *testing.T, open opener) {
	ctx := context.Background()
	s, spec := open(t)
	ready(t, s)
	stores := []estate.Store{s, openSpec(t, spec), openSpec(t, spec), openSpec(t, spec)}
	for round := range 5 {
		var wg sync.WaitGroup
		var same [2]estate.Night
		var other [2]estate.Night
		var errs [4]error
		for i := range 2 {
			wg.Go(func() {
				same[i], errs[i] = stores[i].Choose(ctx, estate.Choice{Night: fmt.Sprintf("same-%d", round), N: 4, Seed: int64(i)}, t0)
			})
			wg.Go(func() {
				other[i], errs[2+i] = stores[2+i].Choose(ctx, estate.Choice{Night: fmt.Sprintf("other-%d-%d", round, i), N: 3, Seed: 9}, t0)
			})
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		assert.Equal(t, same[0], same[1], "one night, chosen once")
		assert.Len(t, same[0].Mailboxes, 4)
		all := slices.Concat(keys(same[0]), keys(other[0]), keys(other[1]))
		assert.Len(t, all, 10)
		assert.Len(t, slices.Compact(slices.Sorted(slices.Values(all))), 10, "no mailbox chosen for two nights")
	}
	counts, err := s.Counts(ctx)
	require.NoError(t, err)
	assert.Equal(t, 50, counts[0].Chosen, "5 rounds of 10 took alpha's 50")
}

// The directory store's files are private to its owner and group (they
// hold addresses), and no temporary file is left behind.
func TestDirFiles(t *testing.T) {
	dir := t.TempDir()
	s, err := estate.Open(context.Background(), dir)
	require.NoError(t, err)
	ready(t, s)
	_, err = s.Choose(context.Background(), estate.Choice{Night: "n1", N: 5, Seed: 1}, t0)
	require.NoError(t, err)
	var files []string
	require.NoError(t, filepath.WalkDir(filepath.Join(dir, "estate"), func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		files = append(files, rel)
		fi, err := os.Stat(p)
		require.NoError(t, err)
		assert.Equal(t, fs.FileMode(0o640), fi.Mode().Perm(), rel)
		return nil
	}))
	assert.ElementsMatch(t, []string{"estate/.lock", "estate/mailboxes.csv", "estate/orgs.json", "estate/nights/n1.json"}, files)
}

// TestDirAtBenchmarkSize runs a programme of the benchmark twin's size
// (25,000 mailboxes) through the directory store: import, re-import,
// nights chosen and recorded, counts.
func TestDirAtBenchmarkSize(t *testing.T) {
	ctx := context.Background()
	s, err := estate.Open(ctx, t.TempDir())
	require.NoError(t, err)
	var all []estate.Mailbox
	for o := range 25 {
		all = append(all, mailboxes(fmt.Sprintf("org%02d", o), 1000)...)
	}
	start := time.Now()
	_, err = s.Import(ctx, all, t0)
	require.NoError(t, err)
	for o := range 25 {
		require.NoError(t, s.SetOrg(ctx, estate.Org{Name: fmt.Sprintf("org%02d", o), State: estate.Ready, By: "ops", Since: t0}))
	}
	res, err := s.Import(ctx, all[:24_900], t0)
	require.NoError(t, err)
	assert.Equal(t, 100, res.Left)
	imported := time.Since(start)
	start = time.Now()
	for i := range 5 {
		n, err := s.Choose(ctx, estate.Choice{Night: fmt.Sprintf("night-%d", i), N: 4000, Seed: int64(i)}, t0)
		require.NoError(t, err)
		outcomes := map[string]estate.Outcome{}
		for j, k := range keys(n) {
			outcomes[k] = estate.Migrated
			if j%100 == 0 {
				outcomes[k] = estate.Deferred
			}
		}
		require.NoError(t, s.Record(ctx, n.Name, outcomes))
	}
	counts, err := s.Counts(ctx)
	require.NoError(t, err)
	chose := time.Since(start)
	var migrated, remaining int
	for _, c := range counts {
		migrated += c.Migrated
		remaining += c.Remaining
	}
	assert.Equal(t, 5*(4000-40), migrated)
	assert.Equal(t, 24_900-migrated, remaining)
	t.Logf("25,000 mailboxes: 25 state changes and two imports in %v; 5 nights of 4,000 chosen and recorded, and counted, in %v", imported.Round(time.Millisecond), chose.Round(time.Millisecond))
}

// day is a night's date as a Choice's range.
func day(y int, m time.Month, d int) (from, until time.Time) {
	from = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	return from, from.AddDate(0, 0, 1)
}

func testReserve(t *testing.T, open opener) {
	ctx := context.Background()
	s, _ := open(t)
	ready(t, s)
	n1, err := s.Choose(ctx, estate.Choice{Night: "n1", N: 10, Seed: 1}, t0)
	require.NoError(t, err)
	k := keys(n1)
	require.NoError(t, s.Record(ctx, "n1", map[string]estate.Outcome{k[1]: estate.Migrated, k[2]: estate.NeedsSupport}))

	// Refused: unknown, migrated, needing support, a leaver.
	at := time.Date(2026, 12, 22, 20, 0, 0, 0, time.UTC)
	assert.ErrorIs(t, s.Reserve(ctx, "nobody", at), estate.ErrUnknownMailbox)
	assert.ErrorContains(t, s.Reserve(ctx, k[1], at), "is migrated already")
	assert.ErrorContains(t, s.Reserve(ctx, k[2], at), "needs support")
	_, err = s.Import(ctx, slices.Concat(mailboxes("alpha", 49), mailboxes("beta", 50), mailboxes("gamma", 50)), t0)
	require.NoError(t, err)
	assert.ErrorContains(t, s.Reserve(ctx, "alpha-0049", at), "is a leaver")

	// Accepted: one chosen for n1 not ended yet (moved off it), one of a
	// pilot organisation (the operator asked), one of the pool for a later
	// date, and one for a date no night takes before the next.
	require.NoError(t, s.Reserve(ctx, k[0], at))
	require.NoError(t, s.Reserve(ctx, "beta-0003", at))
	require.NoError(t, s.Reserve(ctx, "beta-0003", at), "the same again")
	later := time.Date(2026, 12, 23, 20, 0, 0, 0, time.UTC)
	var free []string
	for _, m := range mailboxes("alpha", 49) {
		if !slices.Contains(k, m.Key) {
			free = append(free, m.Key)
		}
	}
	require.NoError(t, s.Reserve(ctx, free[0], later))
	lapsed := time.Date(2026, 12, 21, 20, 0, 0, 0, time.UTC)
	require.NoError(t, s.Reserve(ctx, free[1], lapsed))
	read, err := s.Night(ctx, "n1")
	require.NoError(t, err)
	assert.Equal(t, at, read.Mailboxes[0].ReservedFor, "shown on the night it was chosen for")
	assert.Equal(t, estate.Deferred, read.Mailboxes[0].Outcome,
		"moved off n1 at once: the night of its new date may be chosen before n1's outcomes are written")

	// Back in the pool with its reservation; n1 writing it back deferred
	// later changes nothing.
	from, until := day(2026, 12, 22)
	require.NoError(t, s.Record(ctx, "n1", map[string]estate.Outcome{k[0]: estate.Deferred}))

	n2, err := s.Choose(ctx, estate.Choice{Night: "2026-12-22", N: 100, Seed: 2, ReservedFrom: from, ReservedUntil: until}, t0)
	require.NoError(t, err)
	first := slices.Sorted(slices.Values([]string{k[0], "beta-0003"}))
	assert.Equal(t, first, keys(n2)[:2], "the reserved first, in key order, whatever their organisation's state")
	assert.Len(t, n2.Mailboxes, 2+len(free)-1, "then the ready pool at random: all of it but the one reserved later")
	assert.NotContains(t, keys(n2), free[0], "one reserved for a later night is not sampled")
	assert.Contains(t, keys(n2)[2:], free[1], "a reservation whose date has passed has lapsed")
	for _, m := range n2.Mailboxes {
		assert.True(t, m.ReservedFor.IsZero(), "the night's choice clears the reservation of %s", m.Key)
	}
	again, err := s.Choose(ctx, estate.Choice{Night: "2026-12-22", N: 100, Seed: 2, ReservedFrom: from, ReservedUntil: until}, t0)
	require.NoError(t, err)
	assert.Equal(t, keys(n2), keys(again), "idempotent")
	// Its night chosen, a date is too late to be kept for: refused.
	assert.ErrorContains(t, s.Reserve(ctx, free[0], time.Date(2026, 12, 22, 23, 0, 0, 0, time.UTC)),
		"the night of that date (2026-12-22) has been chosen already")

	// A night without a range (a pilot) takes no reserved mailbox; the
	// night of the later date takes it.
	pilot, err := s.Choose(ctx, estate.Choice{Night: "pilot", N: 100, Seed: 3, Orgs: []string{"alpha"}}, t0)
	require.NoError(t, err)
	assert.NotContains(t, keys(pilot), free[0])
	from, until = day(2026, 12, 23)
	n3, err := s.Choose(ctx, estate.Choice{Night: "2026-12-23", N: 1, Seed: 4, ReservedFrom: from, ReservedUntil: until}, t0)
	require.NoError(t, err)
	assert.Equal(t, []string{free[0]}, keys(n3))
}
