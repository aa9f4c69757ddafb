package workflows

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"mailwave/activities"
	"mailwave/contract"
	"mailwave/mail/outbox"
	"mailwave/mail/sim"
)

// TestPreflightDefersWhatCannotGo runs mailboxes of a simulated estate
// through the real activities (the estate as copier and router, an outbox
// as notifier): one whose source refuses its login, one the target lacks,
// one the target cannot write and one the target has no room for each end
// deferred with their reason, nobody told but the admin; a good one is
// told, migrated, and carries its preflight's figures.
func TestPreflightDefersWhatCannotGo(t *testing.T) {
	dir := t.TempDir()
	_, err := sim.Generate(filepath.Join(dir, "estate"), sim.GenerateOptions{Seed: 5, Mailboxes: 200})
	require.NoError(t, err)
	estate, err := sim.Open(filepath.Join(dir, "estate"), sim.Options{Instant: true, Faults: sim.Faults{
		SourceLoginRate: 0.15, TargetMissingRate: 0.15, TargetNotWritableRate: 0.15, TargetNoRoomRate: 0.15}})
	require.NoError(t, err)
	roster, err := estate.Roster()
	require.NoError(t, err)
	// The first mailbox of each kind.
	pick := map[string]sim.RosterEntry{}
	for _, r := range roster {
		if _, ok := pick[estate.PreflightFault(r.Address)]; !ok {
			pick[estate.PreflightFault(r.Address)] = r
		}
	}
	require.Len(t, pick, 1+len(contract.DeferReasons))
	notices := filepath.Join(dir, "outbox")
	out, err := outbox.New(outbox.Options{Dir: notices, AdminContact: "IT <it-admin@trust.example>"})
	require.NoError(t, err)

	for reason, r := range pick {
		name := reason
		if name == "" {
			name = "good"
		}
		t.Run(name, func(t *testing.T) {
			var ts testsuite.WorkflowTestSuite
			env := ts.NewTestWorkflowEnvironment()
			env.SetWorkflowRunTimeout(90 * 24 * time.Hour)
			env.RegisterWorkflow(MailboxMigration)
			activities.New(out, estate, estate).Register(env)
			key := "key-" + name
			env.ExecuteWorkflow(MailboxMigration, contract.MailboxInput{
				Mailbox:   contract.MailboxRef{Key: key, Address: r.Address, Org: r.Org, DisplayName: r.DisplayName},
				MigrateAt: env.Now().Add(20 * 24 * time.Hour),
			})
			require.True(t, env.IsWorkflowCompleted())
			require.NoError(t, env.GetWorkflowError())
			var res contract.MailboxResult
			require.NoError(t, env.GetWorkflowResult(&res))
			told := func(kind contract.NoticeKind) bool {
				_, err := os.Stat(filepath.Join(notices, key+"-"+string(kind)+".eml"))
				return err == nil
			}
			if reason == "" {
				assert.Equal(t, contract.OutcomeMigrated, res.Outcome, "%+v", res)
				for _, kind := range contract.NoticeKinds {
					assert.True(t, told(kind), "the %s notice", kind)
				}
				assert.False(t, told(contract.NoticeFailure), "the admin is not told of a good one")
				prof, _ := estate.Profile(r.Address)
				require.NotNil(t, res.Preflight)
				assert.Equal(t, prof.Bytes, res.Preflight.SourceBytes)
				assert.Equal(t, prof.Messages, res.Preflight.SourceMessages)
				return
			}
			assert.Equal(t, contract.OutcomeDeferred, res.Outcome)
			assert.Equal(t, contract.StepPreflight, res.FailedStep)
			assert.Equal(t, reason, res.ErrorType)
			assert.Equal(t, contract.DeferReason(reason), res.Reason, "the reason's own words")
			assert.NotContains(t, res.Reason, "@")
			for _, kind := range contract.NoticeKinds {
				assert.False(t, told(kind), "no %s notice for a deferred mailbox", kind)
			}
			require.True(t, told(contract.NoticeFailure), "the admin is told")
			eml, err := os.ReadFile(filepath.Join(notices, key+"-failure.eml"))
			require.NoError(t, err)
			assert.Contains(t, string(eml), reason)
			assert.Contains(t, string(eml), "it-admin@trust.example")
			assert.Zero(t, res.Copied.Items, "nothing copied")
			route, err := estate.Route(t.Context(), contract.MailboxRef{Key: key, Address: r.Address})
			require.NoError(t, err)
			assert.Equal(t, "source", string(route), "never cut over")
			if reason == contract.ErrTypeTargetNoRoom {
				require.NotNil(t, res.Preflight, "the figures read before the target said no")
				assert.True(t, res.Preflight.NoRoom())
			}
		})
	}
}
