package e2e_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"mailwave/contract"
	"mailwave/identity"
	"mailwave/internal/accesstoken"
	"mailwave/internal/connect"
	"mailwave/testkit"
	"mailwave/testkit/fleet"
	"mailwave/testkit/postgres"
	"mailwave/testkit/proc"
	"mailwave/testkit/temporalserver"
	"mailwave/worker/config"
	"mailwave/worker/workerapp"
)

// TestRolesOnTemporal: on the production shape (the Temporal server built
// here, on PostgreSQL, behind mTLS, with mailwave's authorizer) each role
// may do what docs/access.md says and no more, the server refuses a call
// without a good token, and history names the verified operator however
// the starter names itself.
func TestRolesOnTemporal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	starterBin, err := proc.Build(ctx, "starter", t.TempDir())
	require.NoError(t, err)
	pg := postgres.StartT(t)
	dir, err := os.MkdirTemp("", "mailwave-roles-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	srv, err := temporalserver.Start(ctx, temporalserver.Options{Dir: dir, PG: pg})
	require.NoError(t, err)
	t.Cleanup(srv.Stop)

	dial := func(o connect.Options) client.Client {
		t.Helper()
		o.Keys = testkit.TestKeyRing()
		c, err := o.Dial(ctx, nil)
		require.NoError(t, err, "the system's information needs no token: every client reaches the server")
		t.Cleanup(c.Close)
		return c
	}
	as := func(subject string, roles ...accesstoken.Role) (client.Client, connect.Options) {
		t.Helper()
		o, err := srv.ConnectAs(subject, roles...)
		require.NoError(t, err)
		return dial(o), o
	}
	operator, operatorOpts := as("olivia", accesstoken.Operator)
	viewer, _ := as("victor", accesstoken.Viewer)
	workerC, _ := as("wendy", accesstoken.Worker)

	// A worker with a worker's token runs the mailboxes (it polls and
	// completes their tasks).
	est := testkit.NewEstate(t, 11, 2)
	testkit.StartWorker(t, workerC, workerapp.Config{
		TaskQueue: contract.TaskQueue, Notifier: "outbox", OutboxDir: filepath.Join(t.TempDir(), "outbox"),
		Estate: "sim", Sim: config.Sim{Dir: est.Dir, TimeScale: 3600, BytesPerSecond: 1 << 30}, WavesDir: t.TempDir(),
		MaxConcurrentActivities: 5, MaxConcurrentLocalActivities: 5, MaxConcurrentWorkflowTasks: 5, ShutdownTimeout: 5 * time.Second,
	})

	// The operator starts a mailbox, a month away.
	secret := "roles-test-secret"
	keyer, err := identity.NewKeyer([]byte(secret))
	require.NoError(t, err)
	addr := est.Roster[0].Address
	key, err := keyer.Key(addr)
	require.NoError(t, err)
	migrateAt := time.Now().Add(30 * 24 * time.Hour).Truncate(time.Second)
	mbox := contract.MailboxWorkflowID(key)
	startMailbox := func(c client.Client, key, addr string) error {
		_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.MailboxWorkflowID(key), TaskQueue: contract.TaskQueue},
			contract.MailboxWorkflowName, contract.MailboxInput{Mailbox: contract.MailboxRef{Key: key, Address: addr, Org: est.Roster[0].Org},
				MigrateAt: migrateAt, NoticeLead: 14 * 24 * time.Hour, ReminderLead: 24 * time.Hour})
		return err
	}
	// A second mailbox, for the operator to terminate.
	key2, err := keyer.Key(est.Roster[1].Address)
	require.NoError(t, err)
	startWave := func(c client.Client) error {
		_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.WaveWorkflowID("roles"), TaskQueue: contract.TaskQueue},
			contract.WaveWorkflowName, contract.WaveInput{WaveID: "roles"})
		return err
	}
	startNight := func(c client.Client) error {
		_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "roles-night", TaskQueue: contract.TaskQueue},
			contract.NightWorkflowName, contract.NightInput{})
		return err
	}
	signal := func(c client.Client, id, name string, arg any) error {
		return c.SignalWorkflow(ctx, id, "", name, arg)
	}
	update := func(c client.Client) error {
		h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: mbox, UpdateName: contract.UpdateReschedule,
			Args: []any{contract.RescheduleRequest{To: migrateAt.Add(7 * 24 * time.Hour), Reason: "roles test"}}, WaitForStage: client.WorkflowUpdateStageCompleted})
		if err != nil {
			return err
		}
		var res contract.RescheduleResult
		return h.Get(ctx, &res)
	}
	terminate := func(c client.Client, id string) error { return c.TerminateWorkflow(ctx, id, "", "roles test") }
	list := func(c client.Client) error {
		_, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{PageSize: 10})
		return err
	}
	describe := func(c client.Client) error {
		_, err := c.DescribeWorkflowExecution(ctx, mbox, "")
		return err
	}

	t.Run("operator starts", func(t *testing.T) {
		require.NoError(t, startMailbox(operator, key, addr))
		require.NoError(t, startMailbox(operator, key2, est.Roster[1].Address))
	})

	t.Run("viewer lists and describes, nothing more", func(t *testing.T) {
		require.NoError(t, list(viewer))
		require.NoError(t, describe(viewer))
		refused(t, startWave(viewer), "victor (viewer) may not call StartWorkflowExecution")
		refused(t, signal(viewer, mbox, contract.SignalPause, contract.PauseRequest{}), "victor (viewer) may not call SignalWorkflowExecution")
		refused(t, update(viewer), "victor (viewer) may not call UpdateWorkflowExecution")
		refused(t, terminate(viewer, mbox), "victor (viewer) may not call TerminateWorkflowExecution")
		// The server logs each refusal, naming who.
		require.Eventually(t, func() bool {
			b, _ := os.ReadFile(srv.LogFile())
			return strings.Contains(string(b), `"msg":"access refused","who":"victor (viewer)","api":"TerminateWorkflowExecution"`)
		}, 5*time.Second, 100*time.Millisecond, "the refusal in the server's log")
	})

	t.Run("worker cannot start or signal as an operator", func(t *testing.T) {
		refused(t, startWave(workerC), "a worker starts only MailboxMigration workflows")
		refused(t, startNight(workerC), "a worker starts only MailboxMigration workflows")
		for _, s := range []string{contract.SignalPause, contract.SignalResume, contract.SignalCancel} {
			refused(t, signal(workerC, contract.WaveWorkflowID("roles"), s, nil), "a worker sends a wave only")
			refused(t, signal(workerC, mbox, s, nil), "a worker sends a wave only")
		}
		refused(t, terminate(workerC, mbox), "wendy (worker) may not call TerminateWorkflowExecution")
		refused(t, list(workerC), "wendy (worker) may not call ListWorkflowExecutions")
		// What a wave's activity does: start a mailbox (then the operator
		// ends it).
		key3, err := keyer.Key("roles-third@example.org")
		require.NoError(t, err)
		require.NoError(t, startMailbox(workerC, key3, "roles-third@example.org"))
		require.NoError(t, terminate(operator, contract.MailboxWorkflowID(key3)))
	})

	t.Run("refused credentials", func(t *testing.T) {
		none := dial(srv.ConnectNoToken())
		refused(t, list(none), "no access token")

		now := time.Now()
		tokenFile := func(name, tok string) connect.Options {
			f := filepath.Join(t.TempDir(), name)
			require.NoError(t, os.WriteFile(f, []byte(tok), 0o600))
			o := srv.ConnectNoToken()
			o.APIKeyFile = f
			return o
		}
		expired, err := accesstoken.Issue(srv.SigningKey, accesstoken.Claims{Subject: "olivia", Roles: []accesstoken.Role{accesstoken.Admin},
			Namespace: "default", IssuedAt: now.Add(-3 * time.Hour), Expires: now.Add(-time.Hour)})
		require.NoError(t, err)
		refused(t, list(dial(tokenFile("expired", expired))), "access token expired")

		otherKey, err := accesstoken.NewKey()
		require.NoError(t, err)
		forged, err := accesstoken.Issue(otherKey, accesstoken.Claims{Subject: "olivia", Roles: []accesstoken.Role{accesstoken.Admin},
			Namespace: "default", IssuedAt: now, Expires: now.Add(time.Hour)})
		require.NoError(t, err)
		refused(t, list(dial(tokenFile("forged", forged))), "not signed by this programme's key")

		// Revoked: refused within a second or two of `starter access revoke`.
		rita, _ := as("rita", accesstoken.Viewer)
		require.NoError(t, list(rita))
		time.Sleep(1100 * time.Millisecond) // revoked after her token's second
		out, err := exec.CommandContext(ctx, starterBin, "access", "revoke", "--for", "rita", "--revocations", srv.Revocations).CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.Eventually(t, func() bool {
			var pd *serviceerror.PermissionDenied
			return errors.As(list(rita), &pd)
		}, 10*time.Second, 200*time.Millisecond, "a revoked token is refused")
		refused(t, list(rita), "access token revoked")
	})

	t.Run("history names the verified operator", func(t *testing.T) {
		// The starter names itself mallory; its token is olivia's.
		args := append([]string{"mailbox", "pause", "--address", addr, "--identity", "mallory@laptop"}, fleet.ConnectArgs(operatorOpts)...)
		cmd := exec.CommandContext(ctx, starterBin, args...)
		cmd.Env = append(os.Environ(), "MAILWAVE_KEY_SECRET="+secret)
		cmd.Env = append(cmd.Env, testkit.TestKeysEnv()...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)

		var who []string
		it := viewer.GetWorkflowHistory(ctx, mbox, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			require.NoError(t, err)
			if a := ev.GetWorkflowExecutionSignaledEventAttributes(); a != nil && a.SignalName == contract.SignalPause {
				who = append(who, a.Identity)
			}
			if a := ev.GetWorkflowExecutionStartedEventAttributes(); a != nil {
				assert.Equal(t, "olivia (operator)", a.Identity, "who started it")
			}
		}
		assert.Equal(t, []string{"olivia (operator)"}, who, "who paused it")
	})

	t.Run("operator signals, updates and terminates", func(t *testing.T) {
		require.NoError(t, signal(operator, mbox, contract.SignalResume, contract.ResumeRequest{}))
		require.NoError(t, update(operator))
		require.NoError(t, terminate(operator, contract.MailboxWorkflowID(key2)))
		d, err := viewer.DescribeWorkflowExecution(ctx, contract.MailboxWorkflowID(key2), "")
		require.NoError(t, err)
		assert.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED, d.GetWorkflowExecutionInfo().GetStatus())
	})
}

// refused asserts err is the authorizer's PermissionDenied, with a reason
// naming want.
func refused(t *testing.T, err error, want string) {
	t.Helper()
	var pd *serviceerror.PermissionDenied
	if !errors.As(err, &pd) {
		t.Errorf("want PermissionDenied (%s), got %v", want, err)
		return
	}
	assert.True(t, strings.Contains(pd.Reason, want) || strings.Contains(pd.Message, want), "refusal %q (%s), want %q", pd.Message, pd.Reason, want)
}
