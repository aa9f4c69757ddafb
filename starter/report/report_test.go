package report

import (
	"bytes"
	"encoding/csv"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/starter/printer"
)

var t0 = time.Date(2026, 12, 5, 20, 0, 0, 0, time.UTC)

// finished is a mailbox that began copying at t0, two weeks after its
// start, and took took from there.
func finished(key, org string, outcome contract.Outcome, grade contract.Consistency, bytes int64, took time.Duration) Mailbox {
	return FromSummary(contract.MailboxSummary{Key: key, Org: org, WaveID: "w1", Outcome: outcome, Consistency: grade,
		SourceItems: 10, TargetItems: 10, Bytes: bytes, StartedAt: t0.Add(-14 * 24 * time.Hour), CopyStartedAt: t0, FinishedAt: t0.Add(took),
		NoticesSent: []contract.NoticeKind{contract.NoticeT14, contract.NoticeT1}})
}

func TestSummaryPerOrganisationAgainstTheBudget(t *testing.T) {
	mailboxes := []Mailbox{
		finished("a1", "trust-a", contract.OutcomeMigrated, contract.ConsistencyPerfect, 1000, time.Minute),
		finished("a2", "trust-a", contract.OutcomeMigrated, contract.ConsistencyGood, 2000, 3*time.Minute),
		finished("a3", "trust-a", contract.OutcomeNeedsSupport, contract.ConsistencyPoor, 0, 2*time.Minute),
		finished("b1", "trust-b", contract.OutcomeMigrated, contract.ConsistencyPerfect, 500, 10*time.Second),
		{Key: "b2", Org: "trust-b", Outcome: OutcomeRemaining, Stage: "copying"},
		{Key: "c1", Outcome: "terminated"},
	}
	s := Summarise("wave w1", mailboxes, 0.02, 2)
	require.Len(t, s.Organisations, 3)
	assert.Equal(t, OrgSummary{Org: NoOrg, Mailboxes: 1, Other: 1}, s.Organisations[0], "nothing finished: no verdict")
	assert.Equal(t, OrgSummary{Org: "trust-a", Mailboxes: 3, Migrated: 2, NeedsSupport: 1, SupportShare: printer.Share(1.0 / 3),
		Budget: BudgetOver, Bytes: 3000, Perfect: 1, Good: 1, Poor: 1}, s.Organisations[1])
	assert.Equal(t, OrgSummary{Org: "trust-b", Mailboxes: 2, Migrated: 1, SupportShare: 0, Budget: BudgetWithin,
		Remaining: 1, Bytes: 500, Perfect: 1}, s.Organisations[2])
	assert.Equal(t, OrgSummary{Org: AllOrgs, Mailboxes: 6, Migrated: 3, NeedsSupport: 1, SupportShare: 0.25, Budget: BudgetOver,
		Remaining: 1, Other: 1, Bytes: 3500, Perfect: 2, Good: 1, Poor: 1}, s.Total)
	assert.Equal(t, []Slow{{Key: "a2", Org: "trust-a", Outcome: "migrated", Duration: 180}, {Key: "a3", Org: "trust-a", Outcome: "needs_support", Duration: 120}},
		s.Slowest)

	var text bytes.Buffer
	require.NoError(t, s.WriteText(&text))
	lines := strings.Split(text.String(), "\n")
	assert.Equal(t, "wave w1: 6 mailboxes; support budget 2.00% of those finished", lines[0])
	assert.Equal(t, []string{"ORG", "MAILBOXES", "MIGRATED", "NEEDS", "SUPPORT", "SUPPORT", "SHARE", "BUDGET", "CANCELLED", "DEFERRED", "REMAINING",
		"OTHER", "BYTES", "PERFECT", "GOOD", "INVESTIGATE", "POOR"}, strings.Fields(lines[1]))
	assert.Equal(t, []string{"trust-a", "3", "2", "1", "33.33%", "over", "0", "0", "0", "0", "3.0", "kB", "1", "1", "0", "1"}, strings.Fields(lines[3]))
	assert.Equal(t, []string{"(all)", "6", "3", "1", "25.00%", "over", "0", "0", "1", "1", "3.5", "kB", "2", "1", "0", "1"}, strings.Fields(lines[5]))
	assert.Contains(t, text.String(), "slowest (from the first copy pass to the end):\n  KEY  ORG      OUTCOME        DURATION\n  a2   trust-a  migrated       3m0s")
}

func TestCSVHasARowPerMailbox(t *testing.T) {
	var b bytes.Buffer
	a1 := finished("a1", "trust-a", contract.OutcomeMigrated, contract.ConsistencyPerfect, 1000, 90*time.Second)
	a1.Summary.Duplicates = 2 // found and removed: the target is exact
	require.NoError(t, WriteCSV(&b, []Mailbox{
		a1,
		{Key: "b2", Org: "trust-b", Wave: "w1", Outcome: OutcomeRemaining, Stage: "copying"},
	}))
	recs, err := csv.NewReader(&b).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 3)
	assert.Equal(t, CSVHeader, recs[0])
	assert.Equal(t, []string{"a1", "trust-a", "w1", "migrated", "", "", "", "10", "10", "1000", "0", "2", "perfect", "90", "t14 t1",
		"2026-11-21T20:00:00Z", "2026-12-05T20:01:30Z"}, recs[1])
	assert.Equal(t, []string{"b2", "trust-b", "w1", "remaining", "copying", "", "", "", "", "", "", "", "", "", "", "", ""}, recs[2])
}

// deferred is a mailbox its preflight deferred for reason, with its
// figures.
func deferred(key, org, reason string) Mailbox {
	return FromSummary(contract.MailboxSummary{Key: key, Org: org, WaveID: "w1", Outcome: contract.OutcomeDeferred,
		FailedStep: contract.StepPreflight, ErrorType: reason, StartedAt: t0.Add(-14 * 24 * time.Hour), FinishedAt: t0.Add(-14 * 24 * time.Hour),
		Preflight: &contract.Preflight{SourceBytes: 5000, SourceMessages: 40, Oversize: 2}})
}

// TestDeferredCountedByReason: deferred mailboxes are counted apart, not
// in the support share, and by reason in the summary; the CSV gives each
// one's reason.
func TestDeferredCountedByReason(t *testing.T) {
	mailboxes := []Mailbox{
		finished("a1", "trust-a", contract.OutcomeMigrated, contract.ConsistencyPerfect, 1000, time.Minute),
		deferred("a2", "trust-a", contract.ErrTypeTargetNoRoom),
		deferred("a3", "trust-a", contract.ErrTypeSourceLogin),
		deferred("b1", "trust-b", contract.ErrTypeTargetNoRoom),
	}
	s := Summarise("wave w1", mailboxes, 0.02, 2)
	assert.Equal(t, 3, s.Total.Deferred)
	assert.Equal(t, 2, s.Organisations[0].Deferred)
	assert.Equal(t, printer.Share(0), s.Total.SupportShare, "deferred is not needing support")
	assert.Equal(t, BudgetWithin, s.Total.Budget)
	assert.Equal(t, []Deferral{{Reason: contract.ErrTypeSourceLogin, Mailboxes: 1}, {Reason: contract.ErrTypeTargetNoRoom, Mailboxes: 2}}, s.DeferredBy)
	var text bytes.Buffer
	require.NoError(t, s.WriteText(&text))
	assert.Contains(t, text.String(), "deferred, back to the pool (by their preflight, their admin told; Rescheduled: moved to another night by an operator): SourceLogin 1, TargetNoRoom 2\n")

	var b bytes.Buffer
	require.NoError(t, WriteCSV(&b, mailboxes[1:2]))
	recs, err := csv.NewReader(&b).ReadAll()
	require.NoError(t, err)
	col := func(name string) string { return recs[1][slices.Index(CSVHeader, name)] }
	assert.Equal(t, "deferred", col("outcome"))
	assert.Equal(t, contract.ErrTypeTargetNoRoom, col("error_type"))
	assert.Equal(t, "preflight", col("failed_step"))
}
