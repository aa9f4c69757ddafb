package workerapp_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/internal/config"
	"mailwave/internal/workerapp"
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
