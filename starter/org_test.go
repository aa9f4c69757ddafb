package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"os/user"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/roster/estate"
)

// importedEstate imports 100 mailboxes of each of trust-a, trust-b and
// trust-c into a new store, and returns its spec.
func importedEstate(t *testing.T) string {
	t.Helper()
	waves := t.TempDir()
	out, err := inProcess(t, "programme", "import", writeCSV(t, "all.csv", estateCSV([]string{"trust-a", "trust-b", "trust-c"}, 0, 100)), "--waves-dir", waves)
	require.NoError(t, err, out)
	return waves
}

func orgOf(t *testing.T, st estate.Store, name string) estate.Org {
	t.Helper()
	orgs, err := st.Orgs(context.Background())
	require.NoError(t, err)
	for _, o := range orgs {
		if o.Name == name {
			return o
		}
	}
	t.Fatalf("no organisation %s", name)
	return estate.Org{}
}

// pilot chooses a pilot night of n of org's mailboxes and records the
// first support of them as needing support, the next deferred of them as
// deferred, and the rest migrated, leaving inFlight without an outcome.
func pilot(t *testing.T, st estate.Store, night, org string, n, support, deferred, inFlight int) {
	t.Helper()
	ctx := context.Background()
	p, err := st.Choose(ctx, estate.Choice{Night: night, N: n, Seed: 7, Orgs: []string{org}}, time.Now())
	require.NoError(t, err)
	o := map[string]estate.Outcome{}
	for i, m := range p.Mailboxes[:n-inFlight] {
		switch {
		case i < support:
			o[m.Key] = estate.NeedsSupport
		case i < support+deferred:
			o[m.Key] = estate.Deferred
		default:
			o[m.Key] = estate.Migrated
		}
	}
	require.NoError(t, st.Record(ctx, night, o))
}

func TestOrgReady(t *testing.T) {
	waves := importedEstate(t)
	st := openEstate(t, waves)
	ready := func(args ...string) (string, error) {
		return inProcess(t, append([]string{"org", "ready", "--waves-dir", waves, "--by", "jo"}, args...)...)
	}

	_, err := ready("trust-a")
	assert.EqualError(t, err, "trust-a stays a pilot: no pilot yet: no night was chosen with trust-a among its organisations; --force --reason R makes it ready anyway")

	pilot(t, st, "pilot-trust-a-1", "trust-a", 20, 0, 0, 3)
	_, err = ready("trust-a")
	assert.ErrorContains(t, err, "trust-a stays a pilot: pilot pilot-trust-a-1 not finished: 3 still in flight")
	assert.Equal(t, estate.Pilot, orgOf(t, st, "trust-a").State)

	pilot(t, st, "pilot-trust-a-2", "trust-a", 22, 2, 2, 0)
	_, err = ready("trust-a")
	assert.ErrorContains(t, err, "trust-a stays a pilot: pilot pilot-trust-a-2 over budget: 2 of 20 needed support (10 %) > 1.2 %", "the last pilot counts; deferred ones are not")

	pilot(t, st, "pilot-trust-a-3", "trust-a", 4, 0, 4, 0)
	_, err = ready("trust-a")
	assert.ErrorContains(t, err, "pilot pilot-trust-a-3 moved none of trust-a's mailboxes (4 deferred)")

	_, err = ready("trust-a", "--force")
	assert.ErrorContains(t, err, "--force needs --reason")
	_, err = ready("trust-a", "--budget", "120")
	assert.ErrorContains(t, err, "--budget 120")
	_, err = ready("nobody")
	assert.ErrorIs(t, err, estate.ErrUnknownOrg)
	assert.Equal(t, estate.Pilot, orgOf(t, st, "trust-a").State, "every refusal changed nothing")

	out, err := ready("trust-a", "--force", "--reason", "the board accepted the pilot")
	require.NoError(t, err)
	assert.Contains(t, out, "trust-a is ready (forced: the board accepted the pilot (pilot pilot-trust-a-3 moved none")
	a := orgOf(t, st, "trust-a")
	assert.Equal(t, estate.Ready, a.State)
	assert.Equal(t, "jo", a.By)
	assert.True(t, strings.HasPrefix(a.Reason, "forced: the board accepted the pilot ("), a.Reason)
	assert.WithinDuration(t, time.Now(), a.Since, time.Minute)
	out, err = ready("trust-a")
	require.NoError(t, err)
	assert.Contains(t, out, "trust-a is ready (forced: the board")
	assert.Contains(t, out, "nothing changed")

	// Within the budget (the budget given): ready, the verdict recorded.
	pilot(t, st, "pilot-trust-b", "trust-b", 20, 2, 0, 0)
	_, err = ready("trust-b")
	assert.ErrorContains(t, err, "over budget: 2 of 20 needed support (10 %) > 1.2 %")
	out, err = ready("trust-b", "--budget", "10")
	require.NoError(t, err)
	assert.Contains(t, out, "trust-b is ready (pilot pilot-trust-b: 2 of 20 needed support (10 %), within 10 %), by jo")
	pilot(t, st, "pilot-trust-c", "trust-c", 30, 0, 0, 0)
	_, err = ready("trust-c", "--reason", "go-live agreed")
	require.NoError(t, err)
	assert.Equal(t, "pilot pilot-trust-c: 0 of 30 needed support (0 %), within 1.2 %: go-live agreed", orgOf(t, st, "trust-c").Reason)

	// A held organisation is resumed, not made ready.
	_, err = inProcess(t, "org", "hold", "trust-c", "--reason", "too many calls", "--waves-dir", waves, "--by", "sam")
	require.NoError(t, err)
	_, err = ready("trust-c")
	assert.ErrorContains(t, err, `trust-c is held (too many calls) by sam since `)
	assert.ErrorContains(t, err, `"starter org resume trust-c --reason R" makes it ready again`)
}

func TestOrgHoldAndResume(t *testing.T) {
	waves := importedEstate(t)
	st := openEstate(t, waves)

	_, err := inProcess(t, "org", "hold", "trust-a", "--waves-dir", waves)
	assert.ErrorContains(t, err, "--reason is required")
	_, err = inProcess(t, "org", "resume", "trust-a", "--reason", "x", "--waves-dir", waves)
	assert.ErrorContains(t, err, "trust-a is pilot (new in an import) by mailwave since ")
	assert.ErrorContains(t, err, "only a held organisation is resumed")
	_, err = inProcess(t, "org", "hold", "nobody", "--reason", "x", "--waves-dir", waves)
	assert.ErrorIs(t, err, estate.ErrUnknownOrg)

	// A pilot is not held: held, org resume would make it ready without
	// its pilot's verdict.
	_, err = inProcess(t, "org", "hold", "trust-a", "--reason", "x", "--waves-dir", waves)
	assert.ErrorContains(t, err, "only a ready organisation is held")
	_, err = inProcess(t, "org", "ready", "trust-a", "--force", "--reason", "passed on paper", "--waves-dir", waves)
	require.NoError(t, err)

	out, err := inProcess(t, "org", "hold", "trust-a", "--reason", "the trust's IT asked", "--waves-dir", waves)
	require.NoError(t, err)
	me, err := user.Current()
	require.NoError(t, err)
	assert.Equal(t, "trust-a is held (the trust's IT asked), by "+me.Username+"; it was ready\n", out, "by: the OS user")
	held := orgOf(t, st, "trust-a")
	assert.Equal(t, estate.Org{Name: "trust-a", State: estate.Held, Reason: "the trust's IT asked", By: me.Username, Since: held.Since}, held)

	out, err = inProcess(t, "org", "resume", "trust-a", "--reason", "fixed", "--by", "jo", "--waves-dir", waves)
	require.NoError(t, err)
	assert.Equal(t, "trust-a is ready (fixed), by jo; it was held\n", out)
	assert.Equal(t, estate.Ready, orgOf(t, st, "trust-a").State)
}

func TestOrgList(t *testing.T) {
	waves := t.TempDir()
	out, err := inProcess(t, "org", "list", "--waves-dir", waves)
	require.NoError(t, err)
	assert.Contains(t, out, "no organisations")

	waves = importedEstate(t)
	_, err = inProcess(t, "org", "ready", "trust-b", "--force", "--reason", "passed on paper", "--waves-dir", waves)
	require.NoError(t, err)
	_, err = inProcess(t, "org", "hold", "trust-b", "--reason", "merger, pending", "--by", "jo", "--waves-dir", waves)
	require.NoError(t, err)
	out, err = inProcess(t, "org", "list", "--waves-dir", waves)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 4, out)
	assert.Equal(t, []string{"ORG", "STATE", "SINCE", "BY", "REASON"}, strings.Fields(lines[0]))
	assert.Equal(t, []string{"trust-a", "pilot"}, strings.Fields(lines[1])[:2])
	assert.Equal(t, "mailwave", strings.Fields(lines[1])[3])
	assert.Equal(t, []string{"trust-b", "held"}, strings.Fields(lines[2])[:2])
	assert.Equal(t, []string{"jo", "merger,", "pending"}, strings.Fields(lines[2])[3:])

	out, err = inProcess(t, "org", "list", "--waves-dir", waves, "--csv", "-")
	require.NoError(t, err)
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 4)
	assert.Equal(t, []string{"org", "state", "since", "by", "reason"}, recs[0])
	assert.Equal(t, []string{"trust-b", "held"}, recs[2][:2])
	assert.Equal(t, []string{"jo", "merger, pending"}, recs[2][3:])

	out, err = inProcess(t, "org", "list", "--waves-dir", waves, "-o", "json")
	require.NoError(t, err)
	var rows []orgRow
	require.NoError(t, json.Unmarshal([]byte(out), &rows))
	require.Len(t, rows, 3)
	assert.Equal(t, "trust-c", rows[2].Org)
	assert.Equal(t, "pilot", rows[2].State)
}
