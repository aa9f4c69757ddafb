package workerapp_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"mailwave/activities"
	"mailwave/contract"
	"mailwave/testkit"
	"mailwave/worker/config"
	"mailwave/worker/workerapp"
)

// A worker refuses to start on a bad configuration file, naming the file,
// the line, the key and the problem, every problem at once.
func TestWorkerRefusesABadConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mailwave.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`organisations:
  - name: trust-a
    source: {host: imap.a.example, port: 70000, auth: {password_secret: src}}
    target: {host: imap.b.example, security: carrier-pigeon, auth: {password_secret: tgt}}
    notifier: {kind: smtp, from: "not an address"}
    router: {kind: transport_map, transport_map: {path: /tmp/transport, next_hop: "smtp:[x]"}}
`), 0o600))
	_, err := workerapp.BuildActivities(workerapp.Config{ConfigFile: path})
	require.Error(t, err)
	msg := err.Error()
	for _, want := range []string{
		path + ":3: organisations[0].source.port",
		path + ":4: organisations[0].target.security",
		path + ":5: organisations[0].notifier.from",
		path + ":5: organisations[0].notifier.smtp",
	} {
		assert.Contains(t, msg, want)
	}
}

// A configuration that parses but names a secret nobody set is refused at
// start-up, naming the secret and where it was looked for, not at a
// mailbox's T.
func TestWorkerRefusesAMissingSecret(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mailwave.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`organisations:
  - name: trust-a
    default: true
    source: {host: imap.a.example, auth: {password_secret: src}}
    target: {host: imap.b.example, auth: {password_secret: tgt}}
    notifier:
      kind: smtp
      from: migration@a.example
      smtp: {host: smtp.a.example, username: migration, password_secret: smtp-pw-unset, ledger_dir: ledger}
    router: {kind: transport_map, transport_map: {path: transport, next_hop: "smtp:[x]"}}
`), 0o600))
	_, err := workerapp.BuildActivities(workerapp.Config{ConfigFile: path})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "smtp-pw-unset")
	assert.Contains(t, err.Error(), "MAILWAVE_SECRET_SMTP_PW_UNSET")

	t.Setenv("MAILWAVE_SECRET_SMTP_PW_UNSET", "s3cret")
	acts, err := workerapp.BuildActivities(workerapp.Config{ConfigFile: path})
	require.NoError(t, err)
	assert.NotNil(t, acts)
}

// Without --config, a bad setting is named by its flag.
func TestWorkerNamesTheFlagOfABadSetting(t *testing.T) {
	dir := t.TempDir()
	cfg := workerapp.Config{Notifier: "outbox", OutboxDir: filepath.Join(dir, "outbox"), Estate: "sim",
		Sim: config.Sim{Dir: filepath.Join(dir, "no-estate")}}
	_, err := workerapp.BuildActivities(cfg)
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), "--sim-dir: sim: no estate in"), err.Error())

	cfg.TemplatesDir = filepath.Join(dir, "no-templates")
	_, err = workerapp.BuildActivities(cfg)
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), "--templates-dir: "), err.Error())

	cfg.TemplatesDir, cfg.Estate = "", "imap"
	_, err = workerapp.BuildActivities(cfg)
	assert.ErrorContains(t, err, `--estate "imap": the estates are: sim`)
}

// An organisation whose transport map lives on its mail server cuts over
// there: the fleet's workers start without that file's directory and name
// the routing host's task queue for its mailboxes; the routing host's
// worker (--route-only) serves only the organisations routed through it.
func TestRoutingHostsCutOverTheirOwnOrganisations(t *testing.T) {
	dir := t.TempDir()
	est := testkit.NewEstate(t, 1, 1)
	t.Setenv("MAILWAVE_SECRET_PW", "not-a-real-password")
	mta := filepath.Join(dir, "mta") // the mail server's host: not there for the fleet
	path := filepath.Join(dir, "mailwave.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`organisations:
  - name: trust-a
    domains: [a.example]
    source: {host: imap.a.example, auth: {password_secret: pw}}
    target: {host: imap.target.example, auth: {password_secret: pw}}
    notifier: {kind: outbox, from: migration@a.example, outbox: {dir: `+filepath.Join(dir, "outbox")+`}}
    router:
      kind: transport_map
      task_queue: mta-a
      transport_map: {path: `+filepath.Join(mta, "transport")+`, next_hop: "smtp:[mx.target.example]"}
  - name: trust-b
    domains: [b.example]
    source: {host: imap.b.example, auth: {password_secret: pw}}
    target: {host: imap.target.example, auth: {password_secret: pw}}
    notifier: {kind: outbox, from: migration@b.example, outbox: {dir: `+filepath.Join(dir, "outbox")+`}}
    router: {kind: sim, sim: {dir: `+est.Dir+`}}
`), 0o600))

	a := contract.MailboxRef{Key: "ka", Address: "someone@a.example"}
	b := contract.MailboxRef{Key: "kb", Address: "someone@b.example"}
	fleet, err := workerapp.BuildActivities(workerapp.Config{ConfigFile: path})
	require.NoError(t, err, "the fleet never opens the routing host's transport map")
	for ref, want := range map[contract.MailboxRef]string{a: "mta-a", b: ""} {
		q, err := fleet.CutoverQueue(context.Background(), activities.CutoverInput{Mailbox: ref})
		require.NoError(t, err)
		assert.Equal(t, want, q, ref.Key)
	}
	var env testsuite.WorkflowTestSuite
	cut := func(acts *activities.Activities, ref contract.MailboxRef) error {
		e := env.NewTestActivityEnvironment()
		acts.Register(e)
		_, err := e.ExecuteActivity(contract.ActivityCutover, activities.CutoverInput{Mailbox: ref})
		return err
	}
	assert.ErrorContains(t, cut(fleet, a), `organisation "trust-a" cuts over on its routing host (task queue "mta-a")`)

	_, err = workerapp.BuildActivities(workerapp.Config{ConfigFile: path, RouteOnly: true, TaskQueue: "mta-z"})
	assert.ErrorContains(t, err, `no organisation cuts over on task queue "mta-z"`)
	_, err = workerapp.BuildActivities(workerapp.Config{ConfigFile: path, RouteOnly: true, TaskQueue: contract.TaskQueue})
	assert.ErrorContains(t, err, "--route-only: --task-queue must name the routing host's task queue")

	require.NoError(t, os.Mkdir(mta, 0o755))
	host, err := workerapp.BuildActivities(workerapp.Config{ConfigFile: path, RouteOnly: true, TaskQueue: "mta-a"})
	require.NoError(t, err)
	assert.ErrorContains(t, cut(host, b), `organisation "trust-b" cuts over on the fleet's workers, not on this routing host (task queue "mta-a")`)
	assert.ErrorContains(t, cut(host, a), "the T-14 notice was never sent", "the routing host checks the notice ledger too")
}
