package e2e_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"mailwave/contract"
	"mailwave/contract/searchattr"
	"mailwave/identity"
	"mailwave/mail/notices"
	"mailwave/roster/rosterstore"
	"mailwave/roster/wavefile"
	"mailwave/testkit"
	"mailwave/testkit/dovecot"
	"mailwave/testkit/fleet"
	"mailwave/testkit/imaptest"
	"mailwave/testkit/proc"
	"mailwave/testkit/smtptest"
)

const (
	fleetSimMailboxes = 2000
	fleetWorkers      = 3
	fleetRouterQueue  = "mta-1"
	fleetRouterID     = "fleet-router"
)

// faulty is the fleet under test and the faults done to it.
type faulty struct {
	*fleet.Fleet
	t *testing.T

	mu      sync.Mutex
	resumes []time.Duration // from a worker's kill to its copies' next attempts
	kills   []time.Time     // when a worker was SIGKILLed
}

// TestFleetUnderFaults runs a wave of 2,000 simulated mailboxes and three
// real ones (Dovecot to Dovecot) through three worker processes and a
// routing host's worker, while a worker is killed (SIGKILL) every 20
// seconds in rotation and started again, the Temporal server is killed and
// restarted, PostgreSQL is restarted and the routing host's worker is down
// for a while. Then: every mailbox migrated but those missing at the
// source, nothing lost or copied twice, at most one notice per kind per
// mailbox at the relay (two only for a notice whose sender was killed
// just after the relay accepted it), no run of the wave past 10,240
// events, the wave's counts equal to the verifier's, every cutover on the
// routing host, and a killed worker's copies resumed elsewhere within 30
// seconds.
func TestFleetUnderFaults(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	root := t.TempDir()
	bin, err := proc.Build(ctx, "worker", root)
	require.NoError(t, err)

	// The real mail: three users at a source and a target Dovecot.
	users := []dovecot.User{{Name: "alice", Password: "alice-pw"}, {Name: "bob", Password: "bob-pw"}, {Name: "carol", Password: "carol-pw"}}
	src := dovecot.StartT(t, dovecot.Options{Users: users, Plaintext: true})
	tgt := dovecot.StartT(t, dovecot.Options{Users: users, Plaintext: true})
	folders, msgs := imaptest.StandardSeed()
	for _, u := range users {
		cl, err := imaptest.Dial(src.Addr(), u.Name, u.Password)
		require.NoError(t, err)
		require.NoError(t, imaptest.Seed(cl, msgs, folders))
		cl.Close()
	}
	relay := smtptest.Start(t, smtptest.Options{})
	est := testkit.NewEstate(t, 31, fleetSimMailboxes)

	dir, err := os.MkdirTemp("", "mailwave-fleet-") // traversable: PostgreSQL runs as postgres
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	env := []string{}
	for _, u := range users {
		env = append(env, "MAILWAVE_SECRET_PW_"+strings.ToUpper(u.Name)+"="+u.Password)
	}
	fl, err := fleet.Start(ctx, fleet.Options{Dir: dir, WorkerBin: bin, Env: env, Config: func(dsn string) string {
		return fleetConfig(dsn, est.Dir, src.Port, tgt.Port, relay.Port, filepath.Join(dir, fleetRouterID))
	}})
	require.NoError(t, err)
	f := &faulty{Fleet: fl, t: t}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range append(f.Workers, f.Router) {
				t.Logf("%s's log ends:\n%s", p.Name, p.LogTail(20))
			}
		}
		f.Stop()
	})
	for i := range fleetWorkers {
		_, err := f.StartWorker(fmt.Sprintf("worker-%d", i+1),
			"--max-activities", "100", "--max-local-activities", "100", "--max-workflow-tasks", "50", "--workflow-cache", "500")
		require.NoError(t, err)
	}
	_, err = f.StartRouter(fleetRouterID, fleetRouterQueue)
	require.NoError(t, err)

	// The roster, written once to the shared store by the launcher (whose
	// directory no worker sees).
	keyer, err := identity.NewKeyer([]byte("fleet-under-faults-secret"))
	require.NoError(t, err)
	rows := make([]wavefile.Row, 0, len(est.Roster)+len(users))
	for i, r := range est.Roster {
		rows = append(rows, wavefile.Row{Line: i + 2, Address: r.Address, Org: "sim", DisplayName: r.DisplayName})
	}
	for _, u := range users {
		rows = append(rows, wavefile.Row{Line: len(rows) + 2, Address: u.Name + "@real.example", Org: "real"})
	}
	mailboxes, err := wavefile.Build(rows, keyer)
	require.NoError(t, err)
	store, err := rosterstore.Open(ctx, f.DSN)
	require.NoError(t, err)
	const waveID = "fleet"
	require.NoError(t, store.Write(ctx, waveID, mailboxes))
	store.Close()

	migrateAt := time.Now().Add(45 * time.Second)
	_, err = f.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.WaveWorkflowID(waveID), TaskQueue: contract.TaskQueue},
		contract.WaveWorkflowName, contract.WaveInput{WaveID: waveID, Total: len(mailboxes), Cap: 150, StartRate: 200, ErrorBudget: 0.2,
			MigrateAt: migrateAt, NoticeLead: 45 * time.Second, ReminderLead: 20 * time.Second, ReconcileEvery: time.Minute})
	require.NoError(t, err)

	waveDone := make(chan struct{})
	var res contract.WaveResult
	var waveErr error
	go func() {
		defer close(waveDone)
		waveErr = f.Client.GetWorkflow(ctx, contract.WaveWorkflowID(waveID), "").Get(ctx, &res)
	}()
	routerDown := f.faults(ctx, migrateAt, waveDone)

	<-waveDone
	require.NoError(t, waveErr)
	t.Logf("wave: %+v", res)
	for _, w := range append(f.Workers, f.Router) {
		mb, err := w.PeakRSSMB()
		if err == nil {
			t.Logf("%s: started %d times, peak RSS %.0f MB", w.Name, w.Starts(), mb)
		}
	}

	// The wave's counts against the verifier's.
	rep := est.VerifyAll(t, ctx)
	assert.Zero(t, rep.Totals.Lost, "lost")
	assert.Zero(t, rep.Totals.Duplicated, "copied twice")
	assert.Equal(t, fleetSimMailboxes, rep.Totals.CutOver+rep.Totals.Incomplete)
	assert.Equal(t, rep.Totals.CutOver+len(users), res.Migrated, "migrated: the wave's count against the verifier's and Dovecot's")
	assert.Equal(t, rep.Totals.Incomplete, res.NeedsSupport, "need support: only the mailboxes missing at the source")
	assert.Positive(t, res.NeedsSupport, "the estate misses some mailboxes at the source")
	assert.Less(t, res.NeedsSupport, fleetSimMailboxes/20)
	assert.Zero(t, res.Cancelled+res.Refused)
	assert.Equal(t, len(mailboxes), res.Migrated+res.NeedsSupport)
	for _, u := range users {
		assert.Equal(t, snapshotOf(t, src.Addr(), u), snapshotOf(t, tgt.Addr(), u), "%s: the target holds exactly the source's mail", u.Name)
	}
	transport, err := os.ReadFile(filepath.Join(f.WorkerDir(fleetRouterID), "transport"))
	require.NoError(t, err, "the real mailboxes' transport map, on the routing host only")
	for _, u := range users {
		assert.Contains(t, string(transport), u.Name+"@real.example smtp:[mx.target.example]:25")
	}

	// At most one notice per kind per mailbox reached the relay; every
	// mailbox got its two before, and every migrated one its success.
	delivered := map[string][]time.Time{}
	kinds := map[string]int{}
	for _, m := range relay.Messages() {
		p := smtptest.ParseMessage(t, m.Data)
		id := p.Header.Get("Message-Id")
		delivered[id] = append(delivered[id], m.At)
		if len(delivered[id]) == 1 {
			kinds[p.Header.Get(string(notices.HeaderKind))]++
		}
	}
	// The ledger's claim lets one worker send a notice at a time, and the
	// record is written before the connection's QUIT. The one way left to
	// send twice is a worker killed in the instant between the relay's
	// acceptance and that record: the claim then expires and another
	// worker sends again (SMTP is at least once there). So a notice
	// delivered twice must have had its first copy accepted just before a
	// worker's SIGKILL; any other is a defect.
	f.mu.Lock()
	kills := slices.Clone(f.kills)
	f.mu.Unlock()
	twice := 0
	for id, at := range delivered {
		if len(at) == 1 {
			continue
		}
		twice++
		assert.Len(t, at, 2, "notice %s delivered %d times", id, len(at))
		gap := time.Duration(-1)
		for _, k := range kills {
			if d := k.Sub(at[0]); d >= 0 && d < time.Second && (gap < 0 || d < gap) {
				gap = d
			}
		}
		assert.True(t, gap >= 0, "notice %s delivered twice (%s, then %s) with no worker killed within a second after the first",
			id, at[0].Format(time.StampMilli), at[1].Format(time.StampMilli))
		t.Logf("notice %s delivered twice: a worker was killed %s after the relay accepted it; sent again %s later",
			id, gap.Round(time.Millisecond), at[1].Sub(at[0]).Round(time.Second))
	}
	t.Logf("notices at the relay: %v; %d of %d delivered twice", kinds, twice, len(delivered))
	assert.LessOrEqual(t, twice, len(kills), "at most one notice twice per worker killed")
	assert.Equal(t, len(mailboxes), kinds[string(contract.NoticeT14)])
	assert.Equal(t, len(mailboxes), kinds[string(contract.NoticeT1)])
	assert.Equal(t, res.Migrated, kinds[string(contract.NoticeSuccess)])

	// No run of the wave came near Temporal's history limits.
	runs, err := f.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Query: fmt.Sprintf("WorkflowId = '%s'", contract.WaveWorkflowID(waveID)), PageSize: 1000,
	})
	require.NoError(t, err)
	require.NotEmpty(t, runs.Executions)
	for _, r := range runs.Executions {
		assert.LessOrEqual(t, r.HistoryLength, int64(10240), "run %s", r.Execution.RunId)
	}

	// Every cutover ran on the routing host; killed copies resumed soon.
	h := f.scanMailboxes(ctx, mailboxes)
	assert.Equal(t, res.Migrated, h.cutovers, "cutovers found in the mailboxes' histories")
	assert.Empty(t, h.cutoverElsewhere, "cutovers run only by the routing host's worker, on its task queue")
	assert.Positive(t, h.routerWaited, "cutovers waited while the routing host was down (%s)", routerDown)
	assert.Positive(t, h.timedOut, "some copies were killed with their worker and went on in a later attempt")
	f.mu.Lock()
	resumes := f.resumes
	f.mu.Unlock()
	require.NotEmpty(t, resumes, "copies watched across their worker's kill")
	sort.Slice(resumes, func(i, j int) bool { return resumes[i] < resumes[j] })
	worst := resumes[len(resumes)-1]
	t.Logf("copies watched across their worker's kill: %d; resumed after median %s, worst %s",
		len(resumes), resumes[len(resumes)/2].Round(time.Second), worst.Round(time.Second))
	// The heartbeat timeout (20 s after the last heartbeat the server took,
	// which may come before the kill) and a retry delay of at most 5 s,
	// with room for a loaded machine: a retry delay that grew with the
	// attempts would wait minutes.
	assert.Less(t, worst, 45*time.Second, "a killed worker's copy resumes on another within 45 s")

	// Nothing shared hides in a worker's private directory.
	for _, w := range f.Workers {
		assertOnlyFiles(t, f.WorkerDir(w.Name), "mailwave.yaml", w.Name+".log")
	}
}

// faults kills a worker every 20 seconds in rotation from T on and starts
// it again, kills and restarts the Temporal server and restarts PostgreSQL
// once each, and takes the routing host's worker down for 25 seconds,
// until the wave is done. It returns when the routing host was down.
func (f *faulty) faults(ctx context.Context, migrateAt time.Time, done <-chan struct{}) string {
	t := f.t
	wait := func(until time.Time) bool {
		select {
		case <-done:
			return false
		case <-ctx.Done():
			return false
		case <-time.After(time.Until(until)):
			return true
		}
	}
	type step struct {
		at   time.Duration
		what string
		do   func()
	}
	var routerDown string
	steps := []step{
		{35 * time.Second, "kill and restart the Temporal server", func() {
			f.Server.Kill()
			require.NoError(t, f.Server.Restart(ctx))
		}},
		{55 * time.Second, "kill and restart PostgreSQL", func() {
			f.PG.Kill()
			require.NoError(t, f.PG.Restart(ctx))
		}},
		{65 * time.Second, "stop the routing host's worker for 25 s", func() {
			f.Router.Kill()
			from := time.Now()
			wait(from.Add(25 * time.Second))
			require.NoError(t, f.Router.Restart())
			routerDown = fmt.Sprintf("%s to %s", from.Format(time.TimeOnly), time.Now().Format(time.TimeOnly))
		}},
	}
	for i := 0; i < 12; i++ {
		w := f.Workers[i%len(f.Workers)]
		steps = append(steps, step{time.Duration(5+20*i) * time.Second, "kill " + w.Name, func() {
			// Every kill is timed: the worker is killed as soon as it holds
			// a running copy (within 5 s), so that there is one to watch.
			copies := f.copiesOn(ctx, w.Name, 10)
			for try := 0; try < 10 && len(copies) == 0; try++ {
				time.Sleep(500 * time.Millisecond)
				copies = f.copiesOn(ctx, w.Name, 10)
			}
			watch := len(copies) > 0
			w.Kill()
			killed := time.Now()
			f.mu.Lock()
			f.kills = append(f.kills, killed)
			f.mu.Unlock()
			time.Sleep(2 * time.Second)
			require.NoError(t, w.Restart())
			if watch {
				f.timeResumes(ctx, copies, killed)
			}
		}})
	}
	sort.SliceStable(steps, func(i, j int) bool { return steps[i].at < steps[j].at })
	var wg sync.WaitGroup
	for _, s := range steps {
		if !wait(migrateAt.Add(s.at)) {
			break
		}
		t.Logf("T+%s: %s", s.at, s.what)
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.do()
		}()
	}
	wg.Wait()
	return routerDown
}

// copiesOn finds up to n mailboxes whose copy is running on worker, with
// the attempt it is in.
func (f *faulty) copiesOn(ctx context.Context, worker string, n int) map[string]int32 {
	out := map[string]int32{}
	q := fmt.Sprintf("%s = '%s' AND ExecutionStatus = 'Running'", searchattr.Stage.GetName(), contract.StageCopying)
	resp, err := f.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, PageSize: 500})
	if err != nil {
		f.t.Logf("listing the copying mailboxes: %v", err)
		return out
	}
	for _, e := range resp.Executions {
		if len(out) == n {
			break
		}
		if a, ok := f.pendingCopy(ctx, e.Execution.WorkflowId); ok && a != nil &&
			a.State == enumspb.PENDING_ACTIVITY_STATE_STARTED && a.LastWorkerIdentity == fleet.WorkerIdentity(worker) {
			out[e.Execution.WorkflowId] = a.Attempt
		}
	}
	return out
}

// pendingCopy is a mailbox's running copy, or nil; ok is false when the
// server did not answer.
func (f *faulty) pendingCopy(ctx context.Context, id string) (*workflowpb.PendingActivityInfo, bool) {
	d, err := f.Client.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return nil, false
	}
	for _, a := range d.PendingActivities {
		if a.ActivityType.GetName() == contract.ActivityCopyMailbox {
			return a, true
		}
	}
	return nil, true
}

// timeResumes watches the copies a killed worker held until each runs again
// in a later attempt on another worker (or is done), and records how long
// after the kill.
func (f *faulty) timeResumes(ctx context.Context, copies map[string]int32, killed time.Time) {
	for time.Since(killed) < 2*time.Minute && len(copies) > 0 {
		for id, attempt := range copies {
			a, ok := f.pendingCopy(ctx, id)
			if !ok {
				continue
			}
			if a == nil || (a.Attempt > attempt && a.State == enumspb.PENDING_ACTIVITY_STATE_STARTED) {
				f.mu.Lock()
				f.resumes = append(f.resumes, time.Since(killed))
				f.mu.Unlock()
				delete(copies, id)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	for id := range copies {
		f.t.Errorf("%s: its copy did not resume within 2 minutes of its worker's kill", id)
	}
}

// fleetHistories is what the mailboxes' histories show.
type fleetHistories struct {
	cutovers         int
	cutoverElsewhere []string
	routerWaited     int // cutovers that waited more than 5 s to start
	timedOut         int // copies that went on after a heartbeat timeout (their worker died)
}

// scanMailboxes reads every mailbox's history (metadata only: the payloads
// stay sealed).
func (f *faulty) scanMailboxes(ctx context.Context, mailboxes []wavefile.Mailbox) fleetHistories {
	var h fleetHistories
	for _, m := range mailboxes {
		it := f.Client.GetWorkflowHistory(ctx, contract.MailboxWorkflowID(m.Key), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		scheduled := map[int64]*historypb.HistoryEvent{}
		for it.HasNext() {
			e, err := it.Next()
			require.NoError(f.t, err)
			switch a := e.Attributes.(type) {
			case *historypb.HistoryEvent_ActivityTaskScheduledEventAttributes:
				scheduled[e.EventId] = e
			case *historypb.HistoryEvent_ActivityTaskStartedEventAttributes:
				sch := scheduled[a.ActivityTaskStartedEventAttributes.ScheduledEventId].GetActivityTaskScheduledEventAttributes()
				started := a.ActivityTaskStartedEventAttributes
				switch sch.GetActivityType().GetName() {
				case contract.ActivityCutover:
					h.cutovers++
					if sch.GetTaskQueue().GetName() != fleetRouterQueue || started.Identity != fleet.WorkerIdentity(fleetRouterID) {
						h.cutoverElsewhere = append(h.cutoverElsewhere, fmt.Sprintf("%s: queue %s, worker %s", m.Key, sch.GetTaskQueue().GetName(), started.Identity))
					}
					if started.Attempt == 1 && e.EventTime.AsTime().Sub(scheduled[started.ScheduledEventId].EventTime.AsTime()) > 5*time.Second {
						h.routerWaited++
					}
				case contract.ActivityCopyMailbox:
					if tf := started.GetLastFailure().GetTimeoutFailureInfo(); tf != nil && tf.TimeoutType == enumspb.TIMEOUT_TYPE_HEARTBEAT {
						h.timedOut++
					}
				}
			}
		}
	}
	return h
}

// fleetConfig is the configuration every worker of the fleet and the
// routing host's worker share: the simulated estate (with mailboxes
// missing at the source and transient faults) and the real mail, both
// notifying through the relay with the ledger in PostgreSQL, both cut over
// on the routing host, whose transport map is in its own directory.
func fleetConfig(dsn, estate string, srcPort, tgtPort, relayPort int, routerDir string) string {
	notifier := func(org string) string {
		return fmt.Sprintf(`{kind: smtp, from: "Migration <migration@%s.example>", smtp: {host: 127.0.0.1, port: %d, security: none, ledger_url: "%s"}}`,
			org, relayPort, dsn)
	}
	imap := func(port int) string {
		return fmt.Sprintf(`{host: 127.0.0.1, port: %d, security: none, auth: {mechanism: plain, username: "{local}", password_secret: "pw-{local}"}}`, port)
	}
	return fmt.Sprintf(`organisations:
  - name: sim
    sim: {dir: %s, time_scale: 1000, bytes_per_second: 20971520, transient_rate: 0.005, throttle_rate: 0.005, throttle_retry_after: 1s, not_found_rate: 0.01}
    notifier: %s
    router: {kind: sim, task_queue: %s, sim: {dir: %s}}
  - name: real
    domains: [real.example]
    source: %s
    target: %s
    copy: {window: 8}
    notifier: %s
    router:
      kind: transport_map
      task_queue: %s
      transport_map: {path: %s, next_hop: "smtp:[mx.target.example]:25"}
`, estate, notifier("sim"), fleetRouterQueue, estate, imap(srcPort), imap(tgtPort), notifier("real"), fleetRouterQueue,
		filepath.Join(routerDir, "transport"))
}

// snapshotOf is a user's mailbox as an IMAP client sees it.
func snapshotOf(t *testing.T, addr string, u dovecot.User) []imaptest.Message {
	t.Helper()
	cl, err := imaptest.Dial(addr, u.Name, u.Password)
	require.NoError(t, err)
	defer cl.Close()
	snap, err := imaptest.Snapshot(cl)
	require.NoError(t, err)
	return snap
}

// assertOnlyFiles fails if dir holds anything but the named files.
func assertOnlyFiles(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		assert.Contains(t, names, e.Name(), "%s holds %s: a worker's private directory holds nothing another worker needs", dir, e.Name())
	}
}
