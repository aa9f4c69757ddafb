package main

import (
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/testkit/fakegraph"
)

// TestTargetCheck proves a Graph organisation's target for a mailbox (a
// read, a test message written and removed), and says plainly what is
// wrong for a mailbox the target lacks and for a revoked application.
func TestTargetCheck(t *testing.T) {
	dir := t.TempDir()
	g := fakegraph.Start(fakegraph.Options{Tenant: "contoso", ClientID: "app-1", Secret: "graph-s3cret", Mailboxes: []string{"jo@trust-g.example"}})
	t.Cleanup(g.Close)
	ca := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: g.Certificate().Raw}), 0o600))
	cfg := filepath.Join(dir, "mailwave.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`organisations:
  - name: trust-g
    copier:
      kind: graph
      source: {host: 127.0.0.1, port: 9, security: none, auth: {password_secret: src-pw}}
      graph: {tenant: contoso, client_id: app-1, client_secret: graph-app, graph_url: "`+g.GraphURL()+`", login_url: "`+g.LoginURL()+`", ca_file: `+ca+`}
    notifier: {kind: outbox, from: migration@trust-g.example, outbox: {dir: `+filepath.Join(dir, "outbox")+`}}
    router: {kind: webhook, webhook: {url: "http://127.0.0.1:9/cutover"}}
`), 0o600))
	t.Setenv("MAILWAVE_SECRET_SRC_PW", "unused")
	t.Setenv("MAILWAVE_SECRET_GRAPH_APP", "graph-s3cret")

	out, code := runStarter(t, "target", "check", "--config", cfg, "--org", "trust-g", "--mailbox", "jo@trust-g.example")
	require.Zero(t, code, out)
	assert.Contains(t, out, "test message written and removed: OK")
	for _, f := range g.Folders("jo@trust-g.example") {
		assert.Empty(t, f.Messages, "the test message is removed")
	}

	out, code = runStarter(t, "target", "check", "--config", cfg, "--org", "trust-g", "--mailbox", "nobody@trust-g.example")
	assert.NotZero(t, code)
	assert.Contains(t, out, "the mailbox is not found at the target")
	assert.NotContains(t, out, "nobody@", "named by key, not address")

	g.RevokeSecret()
	out, code = runStarter(t, "target", "check", "--config", cfg, "--org", "trust-g", "--mailbox", "jo@trust-g.example")
	assert.NotZero(t, code)
	assert.Contains(t, out, "the login or the application was refused")
	assert.Contains(t, out, "AADSTS7000215")
}
