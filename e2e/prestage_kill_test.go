package e2e_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"mailwave/contract"
	"mailwave/identity"
	"mailwave/internal/connect"
	"mailwave/mail/sim"
	"mailwave/testkit"
	"mailwave/worker/config"
	"mailwave/worker/workerapp"
)

// The child process of TestAWorkerKilledMidPrestagePassLosesNothing: a
// worker on the dev server at its address, copying from the estate at the
// rate given.
const (
	envKillChild   = "MAILWAVE_PRESTAGE_KILL_CHILD"
	envKillAddress = "MAILWAVE_PRESTAGE_KILL_ADDRESS"
	envKillEstate  = "MAILWAVE_PRESTAGE_KILL_ESTATE"
	envKillRate    = "MAILWAVE_PRESTAGE_KILL_RATE"
	envKillOutbox  = "MAILWAVE_PRESTAGE_KILL_OUTBOX"
)

// TestHelperPrestageWorker is not a test: it is the worker process the
// kill test starts (and SIGKILLs), doing nothing unless started so.
func TestHelperPrestageWorker(t *testing.T) {
	if os.Getenv(envKillChild) != "1" {
		return
	}
	rate, err := strconv.ParseInt(os.Getenv(envKillRate), 10, 64)
	require.NoError(t, err)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	c, err := connect.Options{Address: os.Getenv(envKillAddress), Keys: testkit.TestKeyRing()}.Dial(ctx, nil)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, workerapp.Run(ctx, workerapp.Config{
		// The outbox is the workers' shared store of notices sent, as the
		// estate is of mail: the second worker knows the notice went.
		TaskQueue: contract.TaskQueue, Notifier: "outbox", OutboxDir: os.Getenv(envKillOutbox),
		Estate: "sim", Sim: config.Sim{Dir: os.Getenv(envKillEstate), TimeScale: 1, BytesPerSecond: rate},
		MaxConcurrentActivities: 10, MaxConcurrentLocalActivities: 10, MaxConcurrentWorkflowTasks: 10,
		ShutdownTimeout: 5 * time.Second,
	}, c))
}

// TestAWorkerKilledMidPrestagePassLosesNothing: on a real server, the
// worker copying a mailbox's pre-stage bulk pass (about 30 s at the
// estate's rate) is SIGKILLed two thirds of the way; another worker takes
// the pass up once its heartbeat times out (20 s), from the checkpoint the
// last heartbeat the server had carried (the SDK sends one at most every
// 16 s for a 20 s timeout), and the mailbox is migrated at T with nothing
// lost or there twice. What is read again, found there and skipped, is
// what was copied since that heartbeat: well under the two thirds a pass
// taken up from the start would read again.
func TestAWorkerKilledMidPrestagePassLosesNothing(t *testing.T) {
	dir := t.TempDir()
	estateDir := filepath.Join(dir, "estate")
	_, err := sim.Generate(estateDir, sim.GenerateOptions{Seed: 37, Mailboxes: 3})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	keyer, err := identity.NewKeyer([]byte("prestage-kill-secret"))
	require.NoError(t, err)
	est, pick, size := largestOf(t, ctx, estateDir, keyer)
	rate := size / 30

	srv := testkit.NewDevServer(t, "")
	c := srv.Client()
	startWorker := func(name string) (*exec.Cmd, <-chan struct{}, *bytes.Buffer) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperPrestageWorker$", "-test.count=1")
		cmd.Env = append(os.Environ(), envKillChild+"=1", envKillAddress+"="+srv.FrontendHostPort(),
			envKillEstate+"="+estateDir, envKillRate+"="+strconv.FormatInt(rate, 10), envKillOutbox+"="+filepath.Join(dir, "outbox"))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		require.NoError(t, cmd.Start(), name)
		exited := make(chan struct{})
		go func() {
			_ = cmd.Wait()
			close(exited)
		}()
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		})
		return cmd, exited, &out
	}
	first, firstExited, firstOut := startWorker("first")

	key, err := keyer.Key(pick.Address)
	require.NoError(t, err)
	at := time.Now().Add(110 * time.Second)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.MailboxWorkflowID(key), TaskQueue: contract.TaskQueue},
		contract.MailboxWorkflowName, contract.MailboxInput{
			Mailbox:   contract.MailboxRef{Key: key, Address: pick.Address, Org: pick.Org, DisplayName: pick.DisplayName},
			MigrateAt: at, NoticeLead: 105 * time.Second, ReminderLead: 2 * time.Second,
			// The bulk pass planned 30 s long, ending 50 s before T:
			// time for the heartbeat to time out and the pass to end.
			Prestage: &contract.Prestage{MailboxRate: float64(rate), Efficiency: 1, Margin: 50 * time.Second, Cap: 1},
		})
	require.NoError(t, err)
	state := func() contract.MailboxState {
		v, err := c.QueryWorkflow(ctx, run.GetID(), "", contract.QueryState)
		require.NoError(t, err)
		var st contract.MailboxState
		require.NoError(t, v.Get(&st))
		return st
	}
	require.Eventually(t, func() bool {
		st := state()
		return st.Prestage != nil && st.Prestage.Pass > 0 && !st.Prestage.BulkStarted.IsZero()
	}, 70*time.Second, 100*time.Millisecond, "the bulk pass began:\n%s", firstOut)
	time.Sleep(20 * time.Second)
	require.NoError(t, first.Process.Signal(syscall.SIGKILL))
	<-firstExited
	ws, ok := first.ProcessState.Sys().(syscall.WaitStatus)
	require.True(t, ok && ws.Signal() == syscall.SIGKILL, "killed by SIGKILL:\n%s", firstOut)
	killedAt := time.Now()
	_, _, secondOut := startWorker("second")

	var res contract.MailboxResult
	require.NoError(t, run.Get(ctx, &res), "%s", secondOut)
	assert.Equal(t, contract.OutcomeMigrated, res.Outcome, "%+v", res)
	st := state()
	require.NotNil(t, st.Prestage)
	assert.True(t, st.Prestage.BulkDone, "the bulk pass ended before T, on the second worker")
	assert.True(t, st.Prestage.LastPassEnded.After(killedAt))
	assert.False(t, st.Prestage.LastPassEnded.After(at), "and before T")
	t.Logf("copied %+v", res.Copied)
	assert.Less(t, 3*res.Copied.Skipped, res.Copied.Items+res.Copied.Skipped,
		"taken up from a checkpoint, not from the start: %+v", res.Copied)
	rep, err := est.Verify(ctx, []string{pick.Address})
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Totals.CutOver, rep.Summary())
	assert.Zero(t, rep.Totals.Lost, rep.Summary())
	assert.Zero(t, rep.Totals.Duplicated, rep.Summary())
}
