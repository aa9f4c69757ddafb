package e2e_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"google.golang.org/protobuf/proto"

	"mailwave/contract"
	"mailwave/identity"
	"mailwave/internal/connect"
	"mailwave/roster/wavefile"
	"mailwave/testkit"
	"mailwave/testkit/dovecot"
	"mailwave/testkit/imaptest"
	"mailwave/testkit/smtptest"
	"mailwave/worker/config"
	"mailwave/worker/workerapp"
)

// patientFolder is a folder name holding a patient's name, as staff file
// them.
const patientFolder = "Patients/Mr Jones referral"

// TestPrivacyScan runs a wave of real-mail mailboxes (one of which is
// deferred by its preflight, its admin told) with an operator's pause and resume, then
// reads everything Temporal holds without the codec: every workflow ID,
// search attribute and memo, every event of every run's history; and the
// worker's log at info level. None of them may hold an address, a display
// name, a folder name or a password of the fixture.
func TestPrivacyScan(t *testing.T) {
	type person struct{ local, name, password string }
	people := []person{{"alice.smith", "Alice Smith", "alice-pw-7731"}, {"bob.jones", "Bob Jones", "bob-pw-5512"}, {"carol.white", "Carol White", "carol-pw-9904"}}
	const domain = "trust-a.nhs.example"
	var users []dovecot.User
	for _, p := range people {
		users = append(users, dovecot.User{Name: p.local, Password: p.password})
	}
	src := dovecot.StartT(t, dovecot.Options{Users: users, Plaintext: true})
	tgt := dovecot.StartT(t, dovecot.Options{Users: users, Plaintext: true})
	relay := smtptest.Start(t, smtptest.Options{})
	folders, msgs := imaptest.StandardSeed()
	folders = append(folders, imaptest.SeedFolder{Name: patientFolder})
	msgs = append(msgs, imaptest.SeedMessage{Folder: patientFolder,
		Raw: []byte("From: gp@practice.example\r\nTo: alice.smith@" + domain + "\r\nSubject: referral\r\nMessage-ID: <ref-1@practice.example>\r\n\r\nSee attached.\r\n")})
	for _, p := range people[:2] {
		cl, err := imaptest.Dial(src.Addr(), p.local, p.password)
		require.NoError(t, err)
		require.NoError(t, imaptest.Seed(cl, msgs, folders))
		cl.Close()
	}

	dir := t.TempDir()
	configFile := filepath.Join(dir, "mailwave.yaml")
	require.NoError(t, os.WriteFile(configFile, []byte(fmt.Sprintf(`
organisations:
  - name: trust-a
    default: true
    source: {host: 127.0.0.1, port: %d, security: none, auth: {mechanism: plain, username: "{local}", password_secret: "pw-{local}"}}
    target: {host: 127.0.0.1, port: %d, security: none, auth: {mechanism: plain, username: "{local}", password_secret: "pw-{local}"}}
    notifier:
      kind: smtp
      from: "Migration Team <migration@trust-a.example>"
      admin_contact: "it-admin@trust-a.example"
      smtp: {host: 127.0.0.1, port: %d, security: none, ledger_dir: ledger}
    router: {kind: transport_map, transport_map: {path: %s, next_hop: "smtp:[mx.target.example]:25"}}
`, src.Port, tgt.Port, relay.Port, filepath.Join(dir, "transport"))), 0o600))
	for _, p := range people {
		t.Setenv("MAILWAVE_SECRET_PW_"+strings.ToUpper(strings.ReplaceAll(p.local, ".", "_")), p.password)
	}
	t.Setenv("MAILWAVE_SECRET_PW_CAROL_WHITE", "not-carols-password")

	srv := testkit.NewDevServer(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	workerLog := filepath.Join(dir, "worker.log")
	wc := infoLoggingClient(t, ctx, srv.FrontendHostPort(), workerLog, false)
	testkit.StartWorker(t, wc, workerapp.Config{
		TaskQueue: contract.TaskQueue, ConfigFile: configFile, WavesDir: filepath.Join(dir, "waves"),
		MaxConcurrentActivities: 10, MaxConcurrentLocalActivities: 10, MaxConcurrentWorkflowTasks: 10,
		ShutdownTimeout: 5 * time.Second,
	})

	keyer, err := identity.NewKeyer([]byte("privacy-scan-secret-0123"))
	require.NoError(t, err)
	var rows []wavefile.Row
	for i, p := range people {
		rows = append(rows, wavefile.Row{Line: i + 2, Address: p.local + "@" + domain, Org: "trust-a", DisplayName: p.name})
	}
	mailboxes, err := wavefile.Build(rows, keyer)
	require.NoError(t, err)
	const wave = "privacy-1"
	require.NoError(t, wavefile.NewStore(filepath.Join(dir, "waves")).Write(ctx, wave, mailboxes))
	c := srv.Client()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.WaveWorkflowID(wave), TaskQueue: contract.TaskQueue},
		contract.WaveWorkflowName, contract.WaveInput{WaveID: wave, Total: len(mailboxes), Cap: 3,
			MigrateAt: time.Now().Add(5 * time.Second), NoticeLead: 4 * time.Second, ReminderLead: 2 * time.Second})
	require.NoError(t, err)
	require.NoError(t, c.SignalWorkflow(ctx, run.GetID(), "", contract.SignalPause, contract.PauseRequest{Reason: "waiting for Alice Smith's manager"}))
	require.NoError(t, c.SignalWorkflow(ctx, run.GetID(), "", contract.SignalResume, contract.ResumeRequest{}))
	var res contract.WaveResult
	require.NoError(t, run.Get(ctx, &res))
	require.Equal(t, 2, res.Migrated, "%+v", res)
	require.Equal(t, 1, res.Deferred, "the one whose source refuses the login, by its preflight: %+v", res)

	var needles []string
	for _, p := range people {
		needles = append(needles, p.local+"@"+domain, p.name, p.password)
	}
	needles = append(needles, "Jones referral", "Mr Jones", "Réunions", "not-carols-password", "Alice Smith's manager")
	leaks := scanTemporal(t, ctx, srv.FrontendHostPort(), needles)
	assert.Empty(t, leaks, "personal data stored in plain text by Temporal")
	logLeaks := scanFile(t, workerLog, needles)
	assert.Empty(t, logLeaks, "personal data in the worker's info log")
	info, err := os.Stat(workerLog)
	require.NoError(t, err)
	assert.Greater(t, info.Size(), int64(1000), "the worker logged at info level")
}

// TestPrivacyScanSeesPlaintext proves the scan would notice: with the codec
// switched off, a mailbox's address is found in history.
func TestPrivacyScanSeesPlaintext(t *testing.T) {
	dir := t.TempDir()
	est := testkit.NewEstate(t, 3, 1)

	srv := testkit.NewDevServer(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	workerLog := filepath.Join(dir, "worker.log")
	plain := infoLoggingClient(t, ctx, srv.FrontendHostPort(), workerLog, true)
	testkit.StartWorker(t, plain, workerapp.Config{
		TaskQueue: contract.TaskQueue, Notifier: "outbox", OutboxDir: filepath.Join(dir, "outbox"),
		Estate: "sim", Sim: config.Sim{Dir: est.Dir, Instant: true}, WavesDir: filepath.Join(dir, "waves"),
		MaxConcurrentActivities: 5, MaxConcurrentLocalActivities: 5, MaxConcurrentWorkflowTasks: 5,
	})
	ref := contract.MailboxRef{Key: "plain-1", Address: est.Roster[0].Address, DisplayName: est.Roster[0].DisplayName}
	run, err := plain.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.MailboxWorkflowID(ref.Key), TaskQueue: contract.TaskQueue},
		contract.MailboxWorkflowName, contract.MailboxInput{Mailbox: ref, MigrateAt: time.Now().Add(2 * time.Second),
			NoticeLead: time.Second, ReminderLead: time.Second})
	require.NoError(t, err)
	require.NoError(t, run.Get(ctx, nil))

	leaks := scanTemporal(t, ctx, srv.FrontendHostPort(), []string{ref.Address, ref.DisplayName})
	assert.NotEmpty(t, leaks)
	assert.Contains(t, strings.Join(leaks, "\n"), ref.Address)
}

// infoLoggingClient dials the dev server through the connection builder,
// logging at info level as JSON into path, with the codec on unless
// plaintext.
func infoLoggingClient(t *testing.T, ctx context.Context, hostPort, path string, plaintext bool) client.Client {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	// As the worker's own logging does (connect.LogOptions): error texts
	// only at debug.
	logger := connect.Redacting(tlog.NewStructuredLogger(slog.New(slog.NewJSONHandler(f, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	o := connect.Options{Address: hostPort, Keys: testkit.TestKeyRing(), Plaintext: plaintext}
	c, err := o.Dial(ctx, logger)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// scanTemporal reads, through a client without the codec, every workflow
// the server knows (open and closed, every run): IDs, types, search
// attributes, memos and whole histories, and returns where a needle was
// found.
func scanTemporal(t *testing.T, ctx context.Context, hostPort string, needles []string) []string {
	t.Helper()
	raw, err := connect.Options{Address: hostPort, Plaintext: true}.Dial(ctx, nil)
	require.NoError(t, err)
	defer raw.Close()
	svc := raw.WorkflowService()
	var leaks []string
	check := func(where string, b []byte) {
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) || bytes.Contains(bytes.ToLower(b), []byte(strings.ToLower(n))) {
				leaks = append(leaks, fmt.Sprintf("%s holds %q", where, n))
			}
		}
	}
	var token []byte
	runs := 0
	for {
		resp, err := svc.ListWorkflowExecutions(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: "default", PageSize: 1000, NextPageToken: token})
		require.NoError(t, err)
		for _, ex := range resp.GetExecutions() {
			runs++
			id := ex.GetExecution().GetWorkflowId()
			b, err := proto.Marshal(ex)
			require.NoError(t, err)
			check("the visibility record of "+id, b) // ID, type, search attributes, memo
			var htoken []byte
			for {
				h, err := svc.GetWorkflowExecutionHistory(ctx, &workflowservice.GetWorkflowExecutionHistoryRequest{
					Namespace: "default", Execution: ex.GetExecution(), NextPageToken: htoken,
				})
				require.NoError(t, err)
				b, err := proto.Marshal(h.GetHistory())
				require.NoError(t, err)
				check("the history of "+id, b)
				if htoken = h.GetNextPageToken(); len(htoken) == 0 {
					break
				}
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	require.NotZero(t, runs, "the scan read no workflow at all")
	return leaks
}

// scanFile returns the needles found in a file.
func scanFile(t *testing.T, path string, needles []string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var leaks []string
	for _, n := range needles {
		if bytes.Contains(bytes.ToLower(b), []byte(strings.ToLower(n))) {
			leaks = append(leaks, fmt.Sprintf("%s holds %q", filepath.Base(path), n))
		}
	}
	return leaks
}
