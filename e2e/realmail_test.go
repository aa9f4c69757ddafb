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
	dir := t.TempDir()
	users := []dovecot.User{{Name: "alice", Password: "alice-pw"}, {Name: "bob", Password: "bob-pw"}, {Name: "carol", Password: "carol-pw"}}
	src := dovecot.StartT(t, dovecot.Options{Users: users, Plaintext: true})
	tgt := dovecot.StartT(t, dovecot.Options{Users: users, Plaintext: true})
	relay := smtptest.Start(t, smtptest.Options{})

	folders, msgs := imaptest.StandardSeed()
	for _, u := range users[:2] {
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
	t.Setenv("MAILWAVE_SECRET_PW_CAROL", "not-carols-password")

	srv := testkit.NewDevServer(t, "")
	c := srv.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	testkit.StartWorker(t, c, workerapp.Config{
		TaskQueue: contract.TaskQueue, ConfigFile: configFile,
		MaxConcurrentActivities: 10, MaxConcurrentLocalActivities: 10, MaxConcurrentWorkflowTasks: 10,
		ShutdownTimeout: 5 * time.Second,
	})

	start := func(name string, migrateAt time.Time) client.WorkflowRun {
		ref := contract.MailboxRef{Key: "key-" + name, Address: name + "@trust-a.nhs.example", Org: "trust-a", DisplayName: strings.ToUpper(name[:1]) + name[1:]}
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.MailboxWorkflowID(ref.Key), TaskQueue: contract.TaskQueue},
			contract.MailboxWorkflowName, contract.MailboxInput{
				Mailbox: ref, WaveID: "it-real", MigrateAt: migrateAt, NoticeLead: 4 * time.Second, ReminderLead: 2 * time.Second,
			})
		require.NoError(t, err)
		return run
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
		srcSnap, tgtSnap := snap(t, src, name), snap(t, tgt, name)
		require.Equal(t, len(srcSnap), len(tgtSnap), name)
		for i := range srcSnap {
			assert.Equal(t, srcSnap[i], tgtSnap[i], "%s message %d", name, i)
		}
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
