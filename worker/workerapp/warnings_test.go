package workerapp

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Settings that weaken security are reported for the worker to log loudly:
// certificate checks off for an IMAP target and for SMTP.
func TestInsecureSettingsAreWarnedAbout(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mailwave.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`organisations:
  - name: trust-a
    default: true
    source: {host: 127.0.0.1, port: 1143, security: none, auth: {password_secret: src}}
    target: {host: imap.target.example, security: tls, insecure_skip_verify: true, auth: {password_secret: tgt}}
    notifier:
      kind: smtp
      from: migration@a.example
      smtp: {host: smtp.a.example, security: starttls, insecure_skip_verify: true, ledger_dir: ledger}
    router: {kind: transport_map, transport_map: {path: transport, next_hop: "smtp:[x]"}}
`), 0o600))
	t.Setenv("MAILWAVE_SECRET_SRC", "s")
	t.Setenv("MAILWAVE_SECRET_TGT", "t")
	o, err := Config{ConfigFile: path}.ports()
	require.NoError(t, err)
	require.Len(t, o.warnings, 2, "%q", o.warnings)
	assert.Contains(t, o.warnings[0], `organisation "trust-a": target imap.target.example`)
	assert.Contains(t, o.warnings[0], "certificate checks are OFF")
	assert.Contains(t, o.warnings[1], "smtp.a.example")
}
