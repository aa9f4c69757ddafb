package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/mail/port"
)

const testSeed = 42

// newEstate generates an estate of n mailboxes in a temporary directory and
// opens it.
func newEstate(t *testing.T, n int, o Options) *Estate {
	t.Helper()
	dir := t.TempDir()
	_, err := Generate(dir, GenerateOptions{Seed: testSeed, Mailboxes: n})
	require.NoError(t, err)
	e, err := Open(dir, o)
	require.NoError(t, err)
	return e
}

// ref is the mailbox at index, with a hex key as the real key would be.
func ref(e *Estate, index int) contract.MailboxRef {
	en := e.manifest.entry(index)
	return contract.MailboxRef{Key: fmt.Sprintf("%016x", hash(uint64(index), 99)), Address: en.Address, Org: en.Org, DisplayName: en.DisplayName}
}

// pick returns the first mailbox index whose bulk message count is within
// [lo, hi]: big enough for several batches, small enough to be quick.
func pick(t *testing.T, e *Estate, lo, hi int64) int {
	t.Helper()
	for i := range e.manifest.Mailboxes {
		if p := e.profile(i); p.Messages >= lo && p.Messages <= hi && p.Delta > 0 {
			return i
		}
	}
	t.Fatalf("no mailbox with %d-%d messages", lo, hi)
	return 0
}

// copyRetrying runs a pass to the end, retrying from the last checkpoint
// seen on any error that is not permanent, like the activity would. It
// returns the sum of the stats of all attempts and the errors met.
func copyRetrying(t *testing.T, e *Estate, m contract.MailboxRef, pass contract.CopyPass) (contract.CopyStats, []error) {
	t.Helper()
	var (
		total contract.CopyStats
		cp    contract.Checkpoint
		errs  []error
	)
	for attempt := 0; ; attempt++ {
		require.Less(t, attempt, 10_000, "copy never finished")
		var seen contract.CopyStats
		st, err := e.Copy(context.Background(), port.CopyRequest{
			Mailbox: m, Pass: pass, Checkpoint: cp,
			Progress: func(c contract.Checkpoint, s contract.CopyStats) { cp, seen = c, s },
		})
		if err == nil {
			return total.Add(st), errs
		}
		_, permanent := port.IsPermanent(err)
		require.False(t, permanent, "permanent error: %v", err)
		require.Equal(t, seen, st, "stats returned on error match the last progress")
		total = total.Add(st)
		errs = append(errs, err)
	}
}

func verifyOne(t *testing.T, e *Estate, m contract.MailboxRef) ReportRow {
	t.Helper()
	r, err := e.Verify(context.Background(), []string{m.Address})
	require.NoError(t, err)
	require.Len(t, r.Rows, 1)
	return r.Rows[0]
}

func TestGenerate(t *testing.T) {
	dir := t.TempDir()
	m, err := Generate(dir, GenerateOptions{Seed: 7, Mailboxes: 250})
	require.NoError(t, err)
	assert.Equal(t, Manifest{Version: ManifestVersion, Seed: 7, Mailboxes: 250, Orgs: 2, Domain: DefaultDomain}, *m)

	raw, err := os.ReadFile(filepath.Join(dir, RosterFile))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	require.Len(t, lines, 251)
	assert.Equal(t, "address,org,display_name", lines[0])

	e, err := Open(dir, Options{})
	require.NoError(t, err)
	roster, err := e.Roster()
	require.NoError(t, err)
	require.Len(t, roster, 250)
	seen := map[string]bool{}
	for i, r := range roster {
		assert.Equal(t, i, r.Index)
		assert.Equal(t, strings.ToLower(r.Address), r.Address)
		assert.Regexp(t, `^[a-z]+\.[a-z]+\.\d{6}@org00[01]\.nhs\.example$`, r.Address)
		assert.Regexp(t, `^[A-Z][a-z]+ [A-Z][a-z]+$`, r.DisplayName)
		assert.True(t, strings.HasSuffix(r.Address, "@"+r.Org+".nhs.example"))
		assert.False(t, seen[r.Address], "duplicate address")
		seen[r.Address] = true
		p, ok := e.Profile(strings.ToUpper(r.Address))
		require.True(t, ok)
		assert.Equal(t, i, p.Index)
	}

	// Idempotent for the same options, refused for others.
	again, err := Generate(dir, GenerateOptions{Seed: 7, Mailboxes: 250, Orgs: 2, Domain: "NHS.example"})
	require.NoError(t, err)
	assert.Equal(t, m, again)
	_, err = Generate(dir, GenerateOptions{Seed: 8, Mailboxes: 250})
	require.ErrorContains(t, err, "refusing")
	_, err = Generate(dir, GenerateOptions{Seed: 7, Mailboxes: 251})
	require.ErrorContains(t, err, "refusing")
	_, err = Generate(t.TempDir(), GenerateOptions{Seed: 7})
	require.Error(t, err)
	_, err = Open(t.TempDir(), Options{})
	require.ErrorContains(t, err, "no estate")
}

func TestProfileDistribution(t *testing.T) {
	const n = 20_000
	sizes := make([]int64, n)
	var sum int64
	for i := range n {
		p := profileOf(testSeed, i)
		require.Equal(t, p, profileOf(testSeed, i), "deterministic")
		require.GreaterOrEqual(t, p.Bytes, int64(minMailboxBytes))
		require.LessOrEqual(t, p.Bytes, int64(maxMailboxBytes))
		require.GreaterOrEqual(t, p.Messages, int64(1))
		require.InDelta(t, p.Bytes/avgMessageBytes, p.Messages, 1)
		require.GreaterOrEqual(t, p.Delta, 0)
		require.LessOrEqual(t, p.Delta, maxDelta)
		var msgs int64
		for _, f := range p.Folders {
			msgs += int64(f.Messages)
			require.NotZero(t, f.UIDValidity)
		}
		require.Equal(t, p.Messages, msgs, "folders split the messages")
		sizes[i] = p.Bytes
		sum += p.Bytes
	}
	slices.Sort(sizes)
	median, mean := sizes[n/2], sum/n
	t.Logf("median %d MiB, mean %d MiB, max %d MiB", median/mib, mean/mib, sizes[n-1]/mib)
	assert.InDelta(t, 300*mib, median, 30*mib)
	assert.InDelta(t, 1024*mib, mean, 150*mib)
	assert.Less(t, median*2, mean, "median well under mean")
	assert.Greater(t, sizes[n-1], int64(10<<30), "a tail over 10 GB")
	assert.Greater(t, sizes[n/100], int64(minMailboxBytes), "most are not clamped small")
	assert.NotEqual(t, profileOf(testSeed, 1).Bytes, profileOf(testSeed+1, 1).Bytes, "seed matters")

	p := profileOf(testSeed, 3)
	var bytes int64
	for fi, f := range p.Folders {
		for uid := uint32(1); uid <= f.Messages; uid++ {
			bytes += p.messageSize(fi, uid)
		}
	}
	assert.InEpsilon(t, p.Bytes, bytes, 0.05, "message sizes add up to the mailbox size")
}

func TestFullMigration(t *testing.T) {
	e := newEstate(t, 60, Options{Instant: true})
	m := ref(e, pick(t, e, 2000, 8000))
	p, _ := e.Profile(m.Address)
	ctx := context.Background()

	var progress int
	st, err := e.Copy(ctx, port.CopyRequest{Mailbox: m, Pass: contract.PassBulk,
		Progress: func(contract.Checkpoint, contract.CopyStats) { progress++ }})
	require.NoError(t, err)
	assert.Equal(t, p.Messages, st.Items)
	assert.Zero(t, st.Skipped)
	assert.InEpsilon(t, p.Bytes, st.Bytes, 0.1)
	assert.Greater(t, progress, 4, "several batches")

	// The delta arrived at the source with the end of the bulk pass.
	row := verifyOne(t, e, m)
	assert.Equal(t, p.Messages+int64(p.Delta), row.SourceItems)
	assert.Equal(t, int64(p.Delta), row.Missing)
	assert.Equal(t, port.RouteSource, row.Route)

	// A delta pass from an empty checkpoint skips the bulk and copies the delta.
	st, err = e.Copy(ctx, port.CopyRequest{Mailbox: m, Pass: contract.PassDelta})
	require.NoError(t, err)
	assert.Equal(t, int64(p.Delta), st.Items)
	assert.Equal(t, p.Messages, st.Skipped)

	require.NoError(t, e.Cutover(ctx, m))
	route, err := e.Route(ctx, m)
	require.NoError(t, err)
	assert.Equal(t, port.RouteTarget, route)

	// No more arrivals after cutover, even after another bulk pass.
	_, err = e.Copy(ctx, port.CopyRequest{Mailbox: m, Pass: contract.PassBulk})
	require.NoError(t, err)

	r, err := e.Verify(ctx, nil)
	require.NoError(t, err)
	require.Len(t, r.Rows, 1)
	assert.Equal(t, ReportRow{Key: m.Key, SourceItems: p.Messages + int64(p.Delta), TargetItems: p.Messages + int64(p.Delta),
		Route: port.RouteTarget, Cutovers: 1}, r.Rows[0])
	assert.True(t, r.OK(), r.Summary())
	assert.Equal(t, Totals{Mailboxes: 1, CutOver: 1, SourceItems: r.Rows[0].SourceItems, TargetItems: r.Rows[0].SourceItems}, r.Totals)
	assert.Contains(t, r.Summary(), "result: OK")

	var buf bytes.Buffer
	require.NoError(t, r.WriteCSV(&buf))
	assert.Equal(t, fmt.Sprintf("key,source_items,target_items,missing,duplicates,route,cutovers\n%s,%d,%d,0,0,target,1\n",
		m.Key, row.SourceItems, row.SourceItems), buf.String())
	assert.NotContains(t, buf.String(), "@")
}

func TestCutoverWithoutDeltaLosesMail(t *testing.T) {
	e := newEstate(t, 60, Options{Instant: true})
	m := ref(e, pick(t, e, 1, 3000))
	p, _ := e.Profile(m.Address)
	ctx := context.Background()
	_, err := e.Copy(ctx, port.CopyRequest{Mailbox: m, Pass: contract.PassBulk})
	require.NoError(t, err)
	require.NoError(t, e.Cutover(ctx, m))
	r, err := e.Verify(ctx, nil)
	require.NoError(t, err)
	assert.Equal(t, int64(p.Delta), r.Totals.Lost)
	assert.False(t, r.OK())
	assert.Contains(t, r.Summary(), "NOT OK")
}

// interrupted copies m's bulk pass and cancels it after stopAfter batches,
// returning every checkpoint seen.
func interrupted(t *testing.T, e *Estate, m contract.MailboxRef, stopAfter int) []contract.Checkpoint {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cps []contract.Checkpoint
	_, err := e.Copy(ctx, port.CopyRequest{Mailbox: m, Pass: contract.PassBulk,
		Progress: func(c contract.Checkpoint, _ contract.CopyStats) {
			cps = append(cps, c)
			if len(cps) == stopAfter {
				cancel()
			}
		}})
	require.ErrorIs(t, err, context.Canceled)
	require.Len(t, cps, stopAfter)
	return cps
}

func TestResume(t *testing.T) {
	for _, tc := range []struct {
		name string
		from func([]contract.Checkpoint) contract.Checkpoint
		skip bool
	}{
		{"last checkpoint", func(c []contract.Checkpoint) contract.Checkpoint { return c[len(c)-1] }, false},
		{"older checkpoint", func(c []contract.Checkpoint) contract.Checkpoint { return c[0] }, true},
		{"empty checkpoint", func([]contract.Checkpoint) contract.Checkpoint { return contract.Checkpoint{} }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEstate(t, 60, Options{Instant: true})
			m := ref(e, pick(t, e, 2000, 8000))
			p, _ := e.Profile(m.Address)
			cps := interrupted(t, e, m, 3)
			before := verifyOne(t, e, m)
			assert.Positive(t, before.TargetItems)
			assert.Less(t, before.TargetItems, p.Messages)

			// A new Estate on the same directory: as after a worker restart.
			e2, err := Open(e.Dir(), Options{Instant: true})
			require.NoError(t, err)
			assert.Equal(t, before, verifyOne(t, e2, m))
			st, err := e2.Copy(context.Background(), port.CopyRequest{Mailbox: m, Pass: contract.PassBulk, Checkpoint: tc.from(cps)})
			require.NoError(t, err)
			assert.Equal(t, p.Messages-before.TargetItems, st.Items)
			if tc.skip {
				assert.Positive(t, st.Skipped)
			} else {
				assert.Zero(t, st.Skipped)
			}

			row := verifyOne(t, e2, m)
			assert.Equal(t, p.Messages+int64(p.Delta), row.SourceItems)
			assert.Equal(t, p.Messages, row.TargetItems)
			assert.Equal(t, int64(p.Delta), row.Missing, "only the delta is left")
			assert.Zero(t, row.Duplicates)
		})
	}
}

func TestCheckpointOfOtherUIDValidityIsIgnored(t *testing.T) {
	e := newEstate(t, 60, Options{Instant: true})
	m := ref(e, pick(t, e, 2000, 8000))
	p, _ := e.Profile(m.Address)
	cps := interrupted(t, e, m, 2)
	cp := cps[1].Clone()
	f := cp.Folders["INBOX"]
	f.UIDValidity++
	cp.Folders["INBOX"] = f
	st, err := e.Copy(context.Background(), port.CopyRequest{Mailbox: m, Pass: contract.PassBulk, Checkpoint: cp})
	require.NoError(t, err)
	assert.Equal(t, int64(f.LastUID), st.Skipped, "restarted the folder, skipping what was there")
	row := verifyOne(t, e, m)
	assert.Equal(t, p.Messages, row.TargetItems)
	assert.Zero(t, row.Duplicates)
}

func TestOverlappingAttempts(t *testing.T) {
	e := newEstate(t, 60, Options{Instant: true})
	m := ref(e, pick(t, e, 2000, 8000))
	p, _ := e.Profile(m.Address)
	var wg sync.WaitGroup
	stats := make([]contract.CopyStats, 3)
	for i := range stats {
		wg.Go(func() {
			var err error
			stats[i], err = e.Copy(context.Background(), port.CopyRequest{Mailbox: m, Pass: contract.PassBulk})
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	var items int64
	for _, s := range stats {
		items += s.Items
		// The delta arrives when the first attempt ends: the others may see it.
		assert.Contains(t, []int64{p.Messages, p.Messages + int64(p.Delta)}, s.Items+s.Skipped)
	}
	row := verifyOne(t, e, m)
	assert.Equal(t, row.TargetItems, items, "each message copied by exactly one attempt")
	assert.Zero(t, row.Duplicates)
	assert.Equal(t, row.SourceItems-row.TargetItems, row.Missing)
	assert.Equal(t, p.Messages+int64(p.Delta), row.SourceItems)
}

// TestCopyVerifiesEachFolder: a target folder that lost a message, or was
// given one twice (written here behind the copier's back), fails the pass
// that finds it, naming the counts, as the IMAP copier's verification does.
func TestCopyVerifiesEachFolder(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(*store)
		want  string
	}{
		{"missing", func(s *store) { s.UIDs = uidSet{{2, s.UIDs[len(s.UIDs)-1][1]}} }, "1 of "},
		{"twice", func(s *store) { s.write(1, 1) }, "0 of "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEstate(t, 60, Options{Instant: true})
			m := ref(e, pick(t, e, 2000, 8000))
			var cp contract.Checkpoint
			_, err := e.Copy(context.Background(), port.CopyRequest{Mailbox: m, Pass: contract.PassBulk,
				Progress: func(c contract.Checkpoint, _ contract.CopyStats) { cp = c }})
			require.NoError(t, err)
			p, _ := e.Profile(m.Address)
			st, err := e.load(m.Key, p.Index)
			require.NoError(t, err)
			tc.spoil(st.folder(p.Folders[0], false))
			require.NoError(t, e.save(st))

			_, err = e.Copy(context.Background(), port.CopyRequest{Mailbox: m, Pass: contract.PassDelta, Checkpoint: cp})
			typ, permanent := port.IsPermanent(err)
			require.True(t, permanent, "%v", err)
			assert.Equal(t, contract.ErrTypeVerifyMismatch, typ)
			assert.Contains(t, err.Error(), "folder #1: "+tc.want)
			if tc.name == "twice" {
				assert.Contains(t, err.Error(), "1 were written to it twice")
			}
		})
	}
}

func TestCutoverIsIdempotent(t *testing.T) {
	e := newEstate(t, 10, Options{})
	m := ref(e, 1)
	ctx := context.Background()
	route, err := e.Route(ctx, m)
	require.NoError(t, err)
	assert.Equal(t, port.RouteSource, route)
	require.NoError(t, e.Cutover(ctx, m))
	require.NoError(t, e.Cutover(ctx, m))
	route, err = e.Route(ctx, m)
	require.NoError(t, err)
	assert.Equal(t, port.RouteTarget, route)

	st, err := e.load(m.Key, 1)
	require.NoError(t, err)
	assert.Equal(t, 1, st.Cutovers)
	assert.Equal(t, 1, st.CutoverNoops)
	assert.Equal(t, 1, verifyOne(t, e, m).Cutovers)
}

func TestMailboxNotFound(t *testing.T) {
	e := newEstate(t, 10, Options{})
	ctx := context.Background()
	m := contract.MailboxRef{Key: "abcdef0123", Address: "nobody.here.000001@org000.nhs.example"}
	check := func(err error) {
		t.Helper()
		typ, ok := port.IsPermanent(err)
		require.True(t, ok, "permanent: %v", err)
		assert.Equal(t, contract.ErrTypeMailboxNotFound, typ)
		assert.NotContains(t, err.Error(), m.Address)
		assert.NotContains(t, err.Error(), "nobody")
		assert.Contains(t, err.Error(), m.Key)
	}
	_, err := e.Copy(ctx, port.CopyRequest{Mailbox: m, Pass: contract.PassBulk})
	check(err)
	_, err = e.Route(ctx, m)
	check(err)
	check(e.Cutover(ctx, m))

	_, err = e.Verify(ctx, []string{m.Address})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "nobody")

	// A key that is not safe as a file name is refused.
	bad := ref(e, 1)
	bad.Key = "../x"
	typ, _ := port.IsPermanent(e.Cutover(ctx, bad))
	assert.Equal(t, contract.ErrTypeInvalidMailbox, typ)
	// A key already bound to another mailbox is refused.
	other := ref(e, 2)
	require.NoError(t, e.Cutover(ctx, other))
	bad.Key = other.Key
	typ, _ = port.IsPermanent(e.Cutover(ctx, bad))
	assert.Equal(t, contract.ErrTypeInvalidMailbox, typ)
}

func TestNotFoundRate(t *testing.T) {
	notFound := func(rate float64) []int {
		e := newEstate(t, 400, Options{Faults: Faults{NotFoundRate: rate}})
		var out []int
		for i := range 400 {
			_, err := e.Route(context.Background(), ref(e, i))
			if typ, ok := port.IsPermanent(err); ok {
				require.Equal(t, contract.ErrTypeMailboxNotFound, typ)
				out = append(out, i)
			} else {
				require.NoError(t, err)
			}
		}
		return out
	}
	assert.Empty(t, notFound(0))
	assert.Len(t, notFound(1), 400)
	some := notFound(0.1)
	assert.InDelta(t, 40, len(some), 20)
	assert.Equal(t, some, notFound(0.1), "the same mailboxes every time")
}

func TestThrottle(t *testing.T) {
	e := newEstate(t, 60, Options{Instant: true, Faults: Faults{ThrottleRate: 1, ThrottleRetryAfter: 90 * time.Second}})
	m := ref(e, pick(t, e, 1, 3000))
	_, err := e.Copy(context.Background(), port.CopyRequest{Mailbox: m, Pass: contract.PassBulk})
	var thr *port.ThrottledError
	require.ErrorAs(t, err, &thr)
	assert.Equal(t, 90*time.Second, thr.RetryAfter)
	_, permanent := port.IsPermanent(err)
	assert.False(t, permanent)

	// Every step is throttled exactly MaxConsecutiveFaults times, then goes
	// through, also across a restart.
	e, err = Open(e.Dir(), e.opts)
	require.NoError(t, err)
	_, errs := copyRetrying(t, e, m, contract.PassBulk)
	for _, err := range errs {
		require.ErrorAs(t, err, &thr)
	}
	first := 1 // the throttle met before the restart
	assert.Zero(t, (first+len(errs))%MaxConsecutiveFaults)
	assert.Greater(t, len(errs), MaxConsecutiveFaults)

	ctx := context.Background()
	for range MaxConsecutiveFaults {
		require.ErrorAs(t, e.Cutover(ctx, m), &thr)
	}
	require.NoError(t, e.Cutover(ctx, m))
}

func TestFaultsAreDeterministic(t *testing.T) {
	run := func(seed int64) []string {
		dir := t.TempDir()
		_, err := Generate(dir, GenerateOptions{Seed: seed, Mailboxes: 60})
		require.NoError(t, err)
		e, err := Open(dir, Options{Instant: true, Faults: Faults{TransientRate: 0.3, ThrottleRate: 0.2}})
		require.NoError(t, err)
		var trace []string
		for i := range 5 {
			m := ref(e, i)
			_, errs := copyRetrying(t, e, m, contract.PassBulk)
			for {
				err := e.Cutover(context.Background(), m)
				if err == nil {
					break
				}
				errs = append(errs, err)
			}
			for _, err := range errs {
				var thr *port.ThrottledError
				kind := "transient"
				if errors.As(err, &thr) {
					kind = "throttled"
				}
				trace = append(trace, fmt.Sprintf("%d %s %s", i, kind, err))
			}
		}
		r, err := e.Verify(context.Background(), nil)
		require.NoError(t, err)
		assert.Equal(t, 5, r.Totals.CutOver)
		assert.Zero(t, r.Totals.Duplicated)
		return trace
	}
	a := run(testSeed)
	assert.NotEmpty(t, a)
	assert.Equal(t, a, run(testSeed))
	assert.NotEqual(t, a, run(testSeed+1))
}

func TestRateLimit(t *testing.T) {
	probe := newEstate(t, 200, Options{Instant: true})
	// The smallest mailbox: copying its bytes at the chosen rate should take
	// about 300 ms of real time.
	small := 0
	for i := range 200 {
		if probe.profile(i).Bytes < probe.profile(small).Bytes {
			small = i
		}
	}
	m := ref(probe, small)
	start := time.Now()
	st, err := probe.Copy(context.Background(), port.CopyRequest{Mailbox: m, Pass: contract.PassBulk})
	require.NoError(t, err)
	instant := time.Since(start)

	const want = 300 * time.Millisecond
	const scale = 3600.0
	e := newEstate(t, 200, Options{TimeScale: scale, BytesPerSecond: int64(float64(st.Bytes) / want.Seconds() / scale)})
	start = time.Now()
	_, err = e.Copy(context.Background(), port.CopyRequest{Mailbox: m, Pass: contract.PassBulk})
	require.NoError(t, err)
	limited := time.Since(start)
	t.Logf("%d bytes: instant %v, limited %v", st.Bytes, instant, limited)
	assert.Greater(t, limited, want/2)
	assert.Less(t, limited, time.Second)
	assert.Less(t, instant, want/2)

	// The wait gives up with the context.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = e.Copy(ctx, port.CopyRequest{Mailbox: ref(e, (small+1)%200), Pass: contract.PassBulk})
	require.Error(t, err)
}

func TestVerifySubsets(t *testing.T) {
	e := newEstate(t, 30, Options{Instant: true})
	ctx := context.Background()
	for i := range 3 {
		require.NoError(t, e.Cutover(ctx, ref(e, i)))
	}
	r, err := e.Verify(ctx, nil)
	require.NoError(t, err)
	assert.Len(t, r.Rows, 3)
	assert.True(t, slices.IsSortedFunc(r.Rows, func(a, b ReportRow) int { return strings.Compare(a.Key, b.Key) }))
	assert.Equal(t, 3, r.Totals.CutOver)
	assert.Positive(t, r.Totals.Lost, "cut over without a copy")

	r, err = e.Verify(ctx, []string{ref(e, 0).Address, ref(e, 7).Address})
	require.NoError(t, err)
	require.Len(t, r.Rows, 1)
	assert.Equal(t, ref(e, 0).Key, r.Rows[0].Key)
	assert.Equal(t, Totals{Mailboxes: 2, CutOver: 1, Incomplete: 1, NoState: 1,
		SourceItems: r.Rows[0].SourceItems + profileOf(testSeed, 7).Messages, Lost: r.Rows[0].SourceItems}, r.Totals)
	assert.Contains(t, r.Summary(), "1 never touched")
}

func BenchmarkVerify(b *testing.B) {
	const n = 5000
	dir := b.TempDir()
	_, err := Generate(dir, GenerateOptions{Seed: testSeed, Mailboxes: n})
	require.NoError(b, err)
	e, err := Open(dir, Options{Instant: true})
	require.NoError(b, err)
	for i := range n {
		require.NoError(b, e.Cutover(context.Background(), ref(e, i)))
	}
	for b.Loop() {
		r, err := e.Verify(context.Background(), nil)
		require.NoError(b, err)
		require.Equal(b, n, r.Totals.CutOver)
	}
}

// TestTheMailboxBudgetIsKeptPerMailbox: under a per-mailbox budget two
// mailboxes copied at once each take their own budget's time (neither
// waits for the other's), and one mailbox's two passes at once share its
// budget.
func TestTheMailboxBudgetIsKeptPerMailbox(t *testing.T) {
	probe := newEstate(t, 200, Options{Instant: true})
	small := 0
	for i := range 200 {
		if probe.profile(i).Bytes < probe.profile(small).Bytes {
			small = i
		}
	}
	other := (small + 1) % 200
	for i := range 200 {
		if i != small && probe.profile(i).Bytes < probe.profile(other).Bytes {
			other = i
		}
	}
	size := func(i int) int64 {
		st, err := newEstate(t, 200, Options{Instant: true}).Copy(context.Background(), port.CopyRequest{Mailbox: ref(probe, i), Pass: contract.PassBulk})
		require.NoError(t, err)
		return st.Bytes
	}
	const want = 400 * time.Millisecond
	const scale = 3600.0
	budget := int64(float64(size(small)) / want.Seconds() / scale)
	e := newEstate(t, 200, Options{TimeScale: scale, BytesPerSecond: 1 << 40, MailboxBytesPerSecond: budget})
	var wg sync.WaitGroup
	took := make([]time.Duration, 2)
	for j, i := range []int{small, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			_, err := e.Copy(context.Background(), port.CopyRequest{Mailbox: ref(e, i), Pass: contract.PassBulk})
			assert.NoError(t, err)
			took[j] = time.Since(start)
		}()
	}
	wg.Wait()
	wantOther := time.Duration(float64(size(other)) / float64(budget) / scale * float64(time.Second))
	t.Logf("budget %d B/s: %v (want %v), %v (want %v)", budget, took[0], want, took[1], wantOther)
	// Lower bounds: a copy never passes its budget; the upper bound only
	// says the two did not queue behind each other.
	assert.GreaterOrEqual(t, took[0], want*8/10)
	assert.GreaterOrEqual(t, took[1], wantOther*8/10)
	assert.Less(t, took[0], want+wantOther, "the small one did not wait for the other's budget")
}
