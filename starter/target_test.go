package main

import (
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/mail/graph"
	"mailwave/mail/port"
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

// TestTargetCheckSaysConsentIsMissing: the identity platform refusing the
// application with AADSTS65001 (in its error_codes) is consent missing.
func TestTargetCheckSaysConsentIsMissing(t *testing.T) {
	dir := t.TempDir()
	login := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error": "invalid_grant", "error_description": "The user or administrator has not consented to use the application.",
			"error_codes": [65001]}`))
	}))
	t.Cleanup(login.Close)
	cfg := filepath.Join(dir, "mailwave.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`organisations:
  - name: trust-g
    copier:
      kind: graph
      source: {host: 127.0.0.1, port: 9, security: none, auth: {password_secret: src-pw}}
      graph: {tenant: contoso, client_id: app-1, client_secret: graph-app, graph_url: "`+login.URL+`/v1.0", login_url: "`+login.URL+`"}
    notifier: {kind: outbox, from: migration@trust-g.example, outbox: {dir: `+filepath.Join(dir, "outbox")+`}}
    router: {kind: webhook, webhook: {url: "http://127.0.0.1:9/cutover"}}
`), 0o600))
	t.Setenv("MAILWAVE_SECRET_SRC_PW", "unused")
	t.Setenv("MAILWAVE_SECRET_GRAPH_APP", "graph-s3cret")

	out, code := runStarter(t, "target", "check", "--config", cfg, "--org", "trust-g", "--mailbox", "jo@trust-g.example")
	assert.NotZero(t, code)
	assert.Contains(t, out, "consent missing: an administrator must grant the application's permissions")
	assert.NotContains(t, out, "jo@")
}

// TestExplainGoesByTheErrorsTypes: what explain says follows the errors'
// types and codes wherever they are in the chain, not their text.
func TestExplainGoesByTheErrorsTypes(t *testing.T) {
	consent := &port.PermanentError{Type: contract.ErrTypeBadCredentials,
		Err: &graph.RefusedError{Tenant: "contoso", ClientID: "app-1", Code: "invalid_grant", AADSTS: []int{65001}, Description: "not consented"}}
	secret := &port.PermanentError{Type: contract.ErrTypeBadCredentials,
		Err: &graph.RefusedError{Tenant: "contoso", ClientID: "app-1", Code: "invalid_client", AADSTS: []int{7000215}, Description: "AADSTS65001 is not this"}}
	forbidden := &port.PermanentError{Type: contract.ErrTypeBadCredentials,
		Err: fmt.Errorf("mailbox k: the target refused the application: %w", &graph.StatusError{Status: http.StatusForbidden, Code: "ErrorAccessDenied"})}
	unauthorized := &port.PermanentError{Type: contract.ErrTypeBadCredentials,
		Err: fmt.Errorf("mailbox k: %w", &graph.StatusError{Status: http.StatusUnauthorized, Code: "InvalidAuthenticationToken", Msg: "403"})}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("check: %w", consent), "consent missing"},
		{secret, "the login or the application was refused"},
		{forbidden, "permission missing"},
		{unauthorized, "the login or the application was refused"},
		{port.Permanent(contract.ErrTypeMailboxNotFound, "mailbox k: not found"), "the mailbox is not found at the target"},
		{&port.ThrottledError{RetryAfter: time.Minute, Err: errors.New("429")}, "the target is throttling (retry after 1m0s)"},
	} {
		assert.True(t, strings.HasPrefix(explain(tc.err), tc.want), "%v: %s", tc.err, explain(tc.err))
	}
}
