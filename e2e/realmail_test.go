package e2e_test

import (
	"bytes"
	"context"
	"fmt"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"mailwave/contract"
	"mailwave/testkit"
	"mailwave/testkit/dovecot"
	"mailwave/testkit/imaptest"
	"mailwave/testkit/smtptest"
	"mailwave/worker/workerapp"
)

// TestRealMailEndToEnd runs MailboxMigration through the real worker,
// configured by a real configuration file, against two Dovecot servers,
// an SMTP relay and a transport map, on the dev server: two mailboxes
// migrate (notices, bulk, delta with mail that arrived in between,
// cutover), and one whose password is wrong is deferred by its preflight:
// no notice to her, her admin told, no cutover.
func TestRealMailEndToEnd(t *testing.T) {
	users := []dovecot.User{{Name: "alice", Password: "alice-pw"}, {Name: "bob", Password: "bob-pw"}, {Name: "carol", Password: "carol-pw"}}
	e := startRealMail(t, users, users[:2])
	src, relay, c, transport := e.src, e.relay, e.c, e.transport
	t.Setenv("MAILWAVE_SECRET_PW_CAROL", "not-carols-password")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	testkit.StartWorker(t, c, e.worker)

	start := func(name string, migrateAt time.Time) client.WorkflowRun {
		return e.start(t, ctx, name, contract.MailboxInput{MigrateAt: migrateAt, NoticeLead: 4 * time.Second, ReminderLead: 2 * time.Second})
	}
	migrateAt := time.Now().Add(6 * time.Second)
	// Alice is paused during her bulk pass (slowed by the organisation's
	// rate limit), so she holds before the delta and new mail can arrive
	// between the two passes.
	alice := start("alice", migrateAt)
	bob := start("bob", migrateAt)
	carol := start("carol", migrateAt)

	require.Eventually(t, func() bool {
		st := queryState(t, c, alice.GetID())
		return st.Stage == contract.StageCopying
	}, time.Minute, 50*time.Millisecond)
	require.NoError(t, c.SignalWorkflow(ctx, alice.GetID(), "", contract.SignalPause, contract.PauseRequest{Reason: "new mail test"}))
	require.Eventually(t, func() bool {
		return queryState(t, c, alice.GetID()).Stage == contract.StagePaused
	}, time.Minute, 50*time.Millisecond)
	late := []imaptest.SeedMessage{{Folder: "INBOX", InternalDate: time.Now().Truncate(time.Second),
		Raw: []byte("From: x@y.example\r\nTo: alice@trust-a.nhs.example\r\nSubject: between the passes\r\nMessage-ID: <late@y.example>\r\n\r\nhello\r\n")}}
	cl, err := imaptest.Dial(src.Addr(), "alice", "alice-pw")
	require.NoError(t, err)
	require.NoError(t, imaptest.Seed(cl, late, nil))
	cl.Close()
	require.NoError(t, c.SignalWorkflow(ctx, alice.GetID(), "", contract.SignalResume, nil))

	for name, run := range map[string]client.WorkflowRun{"alice": alice, "bob": bob} {
		var res contract.MailboxResult
		require.NoError(t, run.Get(ctx, &res), name)
		assert.Equal(t, contract.OutcomeMigrated, res.Outcome, "%s: %+v", name, res)
		e.sameMail(t, name)
	}
	var carolRes contract.MailboxResult
	require.NoError(t, carol.Get(ctx, &carolRes))
	// Her source refuses the login: her preflight defers her before any
	// notice (she is told nothing, and goes back to the pool).
	assert.Equal(t, contract.OutcomeDeferred, carolRes.Outcome)
	assert.Equal(t, contract.StepPreflight, carolRes.FailedStep)
	assert.Equal(t, contract.ErrTypeSourceLogin, carolRes.ErrorType)

	// The transport map routes alice and bob to the target, not carol,
	// and keeps what was there.
	tm, err := os.ReadFile(transport)
	require.NoError(t, err)
	assert.Contains(t, string(tm), "# managed by mailwave\nother@elsewhere.example smtp:[old.example]\n")
	assert.Contains(t, string(tm), "alice@trust-a.nhs.example smtp:[mx.target.example]:25\n")
	assert.Contains(t, string(tm), "bob@trust-a.nhs.example smtp:[mx.target.example]:25\n")
	assert.NotContains(t, string(tm), "carol@")

	// Every notice once, with its deterministic Message-ID; carol none,
	// and the admin her failure notice.
	got := map[string]int{}
	for _, m := range relay.Messages() {
		msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
		require.NoError(t, err)
		got[msg.Header.Get("Message-Id")+" to "+strings.Join(m.To, ",")]++
	}
	want := map[string]int{}
	for _, name := range []string{"alice", "bob"} {
		for _, kind := range contract.NoticeKinds {
			want[contract.NoticeMessageID("key-"+name, kind)+" to "+name+"@trust-a.nhs.example"] = 1
		}
	}
	want[contract.NoticeMessageID("key-carol", contract.NoticeFailure)+" to it-admin@trust-a.example"] = 1
	assert.Equal(t, want, got)

	if *recordDir != "" {
		recordHistory(t, c, alice.GetID(), filepath.Join(*recordDir, "mailbox_real_mail_delta_after_pause.json"))
		recordHistory(t, c, carol.GetID(), filepath.Join(*recordDir, "mailbox_deferred_admin_told.json"))
	}
}

// realMail is two Dovecot servers (source and target), an SMTP relay, a
// transport map and a worker configuration for them, on a dev server.
type realMail struct {
	src, tgt  *dovecot.Server
	relay     *smtptest.Server
	c         client.Client
	transport string
	worker    workerapp.Config
}

// startRealMail starts the servers with users, seeding the standard
// fixture into the source mailboxes of seeded, and writes the worker's
// configuration (its secrets in the environment).
func startRealMail(t *testing.T, users, seeded []dovecot.User) *realMail {
	t.Helper()
	dir := t.TempDir()
	src := dovecot.StartT(t, dovecot.Options{Users: users, Plaintext: true})
	tgt := dovecot.StartT(t, dovecot.Options{Users: users, Plaintext: true})
	relay := smtptest.Start(t, smtptest.Options{})

	folders, msgs := imaptest.StandardSeed()
	for _, u := range seeded {
		cl, err := imaptest.Dial(src.Addr(), u.Name, u.Password)
		require.NoError(t, err)
		require.NoError(t, imaptest.Seed(cl, msgs, folders))
		cl.Close()
	}

	transport := filepath.Join(dir, "transport")
	require.NoError(t, os.WriteFile(transport, []byte("# managed by mailwave\nother@elsewhere.example smtp:[old.example]\n"), 0o644))
	configFile := filepath.Join(dir, "mailwave.yaml")
	require.NoError(t, os.WriteFile(configFile, []byte(fmt.Sprintf(`
organisations:
  - name: trust-a
    default: true
    source:
      host: 127.0.0.1
      port: %d
      security: none
      auth: {mechanism: plain, username: "{local}", password_secret: "pw-{local}"}
    target:
      host: 127.0.0.1
      port: %d
      security: none
      auth: {mechanism: login, username: "{local}", password_secret: "pw-{local}"}
    copy: {window: 8, max_message_bytes: 20971520, bytes_per_second: 4194304}
    notifier:
      kind: smtp
      from: "Migration Team <migration@trust-a.example>"
      admin_contact: "it-admin@trust-a.example"
      smtp: {host: 127.0.0.1, port: %d, security: none, ledger_dir: ledger}
    router:
      kind: transport_map
      transport_map: {path: %s, next_hop: "smtp:[mx.target.example]:25"}
`, src.Port, tgt.Port, relay.Port, transport)), 0o600))
	for _, u := range users {
		t.Setenv("MAILWAVE_SECRET_PW_"+strings.ToUpper(u.Name), u.Password)
	}
	srv := testkit.NewDevServer(t, "")
	return &realMail{src: src, tgt: tgt, relay: relay, c: srv.Client(), transport: transport, worker: workerapp.Config{
		TaskQueue: contract.TaskQueue, ConfigFile: configFile,
		MaxConcurrentActivities: 10, MaxConcurrentLocalActivities: 10, MaxConcurrentWorkflowTasks: 10,
		ShutdownTimeout: 5 * time.Second,
	}}
}

// start starts a mailbox of trust-a by its user name, with in's timing.
func (e *realMail) start(t *testing.T, ctx context.Context, name string, in contract.MailboxInput) client.WorkflowRun {
	t.Helper()
	in.Mailbox = contract.MailboxRef{Key: "key-" + name, Address: name + "@trust-a.nhs.example", Org: "trust-a", DisplayName: strings.ToUpper(name[:1]) + name[1:]}
	in.WaveID = "it-real"
	run, err := e.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.MailboxWorkflowID(in.Mailbox.Key), TaskQueue: contract.TaskQueue},
		contract.MailboxWorkflowName, in)
	require.NoError(t, err)
	return run
}

// deliver puts a new message in a source mailbox's INBOX.
func (e *realMail) deliver(t *testing.T, user dovecot.User, subject string) {
	t.Helper()
	m := []imaptest.SeedMessage{{Folder: "INBOX", InternalDate: time.Now().Truncate(time.Second),
		Raw: []byte(fmt.Sprintf("From: x@y.example\r\nTo: %s@trust-a.nhs.example\r\nSubject: %s\r\nMessage-ID: <%s@y.example>\r\n\r\nhello\r\n",
			user.Name, subject, strings.ReplaceAll(subject, " ", "-")))}}
	cl, err := imaptest.Dial(e.src.Addr(), user.Name, user.Password)
	require.NoError(t, err)
	require.NoError(t, imaptest.Seed(cl, m, nil))
	cl.Close()
}

// sameMail requires a user's target mailbox to hold exactly the source's
// messages: nothing lost, nothing twice.
func (e *realMail) sameMail(t *testing.T, name string) {
	t.Helper()
	srcSnap, tgtSnap := snap(t, e.src, name), snap(t, e.tgt, name)
	require.Equal(t, len(srcSnap), len(tgtSnap), name)
	for i := range srcSnap {
		assert.Equal(t, srcSnap[i], tgtSnap[i], "%s message %d", name, i)
	}
}

func queryState(t *testing.T, c client.Client, id string) contract.MailboxState {
	t.Helper()
	v, err := c.QueryWorkflow(context.Background(), id, "", contract.QueryState)
	if err != nil {
		return contract.MailboxState{}
	}
	var st contract.MailboxState
	require.NoError(t, v.Get(&st))
	return st
}

func snap(t *testing.T, s *dovecot.Server, user string) []imaptest.Message {
	t.Helper()
	cl, err := imaptest.Dial(s.Addr(), user, user+"-pw")
	require.NoError(t, err)
	defer cl.Close()
	msgs, err := imaptest.Snapshot(cl)
	require.NoError(t, err)
	return msgs
}

// TestAPrestagedRealMailbox: a pre-staged mailbox on Dovecot: its bulk
// pass runs after its notice and a margin before T, mail that arrives after
// it is read by the next incremental pass, mail that arrives after the
// last pass before T by the final delta at T; the target ends with every
// message once.
func TestAPrestagedRealMailbox(t *testing.T) {
	dave := dovecot.User{Name: "dave", Password: "dave-pw"}
	e := startRealMail(t, []dovecot.User{dave}, []dovecot.User{dave})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	testkit.StartWorker(t, e.c, e.worker)

	at := time.Now().Add(40 * time.Second)
	run := e.start(t, ctx, "dave", contract.MailboxInput{MigrateAt: at, NoticeLead: 38 * time.Second, ReminderLead: 2 * time.Second,
		// The fixture copies in about a second at the organisation's 4
		// MiB/s: the bulk pass is planned 20 s before T, an incremental
		// pass every 5 s after it while 5 s are left.
		Prestage: &contract.Prestage{MailboxRate: 4 << 20, Efficiency: 1, Margin: 20 * time.Second, IncrementalEvery: 5 * time.Second, Cap: 1}})
	prestage := func() contract.PrestageState {
		st := queryState(t, e.c, run.GetID())
		if st.Prestage == nil {
			return contract.PrestageState{}
		}
		return *st.Prestage
	}
	require.Eventually(t, func() bool { return prestage().BulkDone }, 40*time.Second, 50*time.Millisecond, "the bulk pass ran")
	require.True(t, time.Now().Before(at.Add(-10*time.Second)), "the bulk pass ended well before T")
	e.deliver(t, dave, "after the bulk pass")
	passes := prestage().Passes
	require.Eventually(t, func() bool { return prestage().Passes >= passes+1 }, 20*time.Second, 50*time.Millisecond, "an incremental pass ran")
	require.True(t, time.Now().Before(at), "before T")
	e.deliver(t, dave, "after an incremental pass")

	var res contract.MailboxResult
	require.NoError(t, run.Get(ctx, &res))
	assert.Equal(t, contract.OutcomeMigrated, res.Outcome, "%+v", res)
	require.NotNil(t, res.Prestage)
	assert.GreaterOrEqual(t, res.Prestage.Passes, 2, "a bulk pass and an incremental one before T")
	assert.False(t, res.Prestage.LastPassEnded.After(at), "every pass before T ended before it")
	assert.True(t, res.Prestage.BulkStarted.Before(at.Add(-15*time.Second)))
	e.sameMail(t, "dave")
	// Each new message was copied once, by the pass after it arrived.
	assert.Zero(t, res.Copied.Duplicates)
}
