package workerapp_test

import (
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"mailwave/activities"
	"mailwave/contract"
	"mailwave/testkit/dovecot"
	"mailwave/testkit/fakegraph"
	"mailwave/testkit/imaptest"
	"mailwave/worker/workerapp"
)

// TestAGraphOrganisationCopiesIntoExchangeOnline: an organisation whose
// copier is of kind graph copies its mailboxes from its IMAP source into
// Graph (the fake, trusted through ca_file) through the copy activity,
// with the client secret looked up by its name.
func TestAGraphOrganisationCopiesIntoExchangeOnline(t *testing.T) {
	dir := t.TempDir()
	src := dovecot.StartT(t, dovecot.Options{Users: []dovecot.User{{Name: "alice", Password: "alice-pw"}}, Plaintext: true})
	cl, err := imaptest.Dial(src.Addr(), "alice", "alice-pw")
	require.NoError(t, err)
	folders, msgs := imaptest.StandardSeed()
	require.NoError(t, imaptest.Seed(cl, msgs, folders))
	cl.Close()
	g := fakegraph.Start(fakegraph.Options{Tenant: "contoso", ClientID: "app-1", Secret: "graph-s3cret", Mailboxes: []string{"alice@trust-g.example"}})
	t.Cleanup(g.Close)
	ca := filepath.Join(dir, "graph-ca.pem")
	require.NoError(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: g.Certificate().Raw}), 0o600))
	t.Setenv("MAILWAVE_SECRET_SRC_PW", "alice-pw")
	t.Setenv("MAILWAVE_SECRET_GRAPH_APP", "graph-s3cret")

	path := filepath.Join(dir, "mailwave.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`organisations:
  - name: trust-g
    domains: [trust-g.example]
    copier:
      kind: graph
      source: {host: 127.0.0.1, port: `+strings.Split(src.Addr(), ":")[1]+`, security: none, auth: {username: "{local}", password_secret: src-pw}}
      graph: {tenant: contoso, client_id: app-1, client_secret: graph-app, graph_url: "`+g.GraphURL()+`", login_url: "`+g.LoginURL()+`", ca_file: `+ca+`}
    notifier: {kind: outbox, from: migration@trust-g.example, outbox: {dir: `+filepath.Join(dir, "outbox")+`}}
    router: {kind: webhook, webhook: {url: "http://127.0.0.1:9/cutover"}}
`), 0o600))
	acts, err := workerapp.BuildActivities(workerapp.Config{ConfigFile: path})
	require.NoError(t, err)

	var suite testsuite.WorkflowTestSuite
	e := suite.NewTestActivityEnvironment()
	acts.Register(e)
	v, err := e.ExecuteActivity(contract.ActivityCopyMailbox, activities.CopyInput{
		Mailbox: contract.MailboxRef{Key: "k-alice", Address: "alice@trust-g.example", Org: "trust-g"}, Pass: contract.PassBulk})
	require.NoError(t, err)
	var res activities.CopyResult
	require.NoError(t, v.Get(&res))
	assert.Equal(t, int64(len(msgs)), res.Stats.Items)
	n := 0
	for _, f := range g.Folders("alice@trust-g.example") {
		n += len(f.Messages)
	}
	assert.Equal(t, len(msgs), n, "every message in Graph, once")
}
