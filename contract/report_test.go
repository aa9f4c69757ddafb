package contract

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestGrade(t *testing.T) {
	migrated := func(items, bad int64) MailboxResult {
		return MailboxResult{Outcome: OutcomeMigrated, Copied: CopyStats{Items: items, BadItems: bad}}
	}
	for name, tc := range map[string]struct {
		r    MailboxResult
		want Consistency
	}{
		"all copied":               {migrated(500, 0), ConsistencyPerfect},
		"a few bad items":          {migrated(500, 3), ConsistencyGood},
		"over 1 % bad":             {migrated(100, 2), ConsistencyInvestigate},
		"over ten bad":             {migrated(100_000, 11), ConsistencyInvestigate},
		"verification found short": {MailboxResult{Outcome: OutcomeNeedsSupport, FailedStep: StepCopyDelta, ErrorType: ErrTypeVerifyMismatch}, ConsistencyPoor},
		"copy failed":              {MailboxResult{Outcome: OutcomeNeedsSupport, FailedStep: StepCopyBulk, ErrorType: ErrTypeMailboxNotFound}, ConsistencyPoor},
		"cutover failed":           {MailboxResult{Outcome: OutcomeNeedsSupport, FailedStep: StepCutover, Copied: CopyStats{Items: 9}}, ConsistencyInvestigate},
		"notice failed":            {MailboxResult{Outcome: OutcomeNeedsSupport, FailedStep: StepNoticeT14}, ""},
		"cancelled":                {MailboxResult{Outcome: OutcomeCancelled}, ""},
	} {
		assert.Equal(t, tc.want, Grade(tc.r), name)
	}
	s := MailboxResult{Key: "k1", Outcome: OutcomeMigrated, Copied: CopyStats{Items: 700, Skipped: 200, BadItems: 1, Bytes: 900}}.
		Summary("trust-a", "w1", []NoticeKind{NoticeT14}, time.Time{})
	assert.Equal(t, int64(901), s.SourceItems)
	assert.Equal(t, int64(900), s.TargetItems)
	assert.Equal(t, ConsistencyGood, s.Consistency)
}
