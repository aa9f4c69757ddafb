package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/mail/sim"
	"mailwave/testkit"
	"mailwave/worker/config"
	"mailwave/worker/workerapp"
)

const testSecret = "starter-test-secret-0123"

// TestMain lets the tests run this binary as the real starter command.
func TestMain(m *testing.M) {
	if os.Getenv("MAILWAVE_RUN_STARTER") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runStarter runs the starter as a process and returns its output and exit code.
func runStarter(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "MAILWAVE_RUN_STARTER=1", "MAILWAVE_KEY_SECRET="+testSecret,
		"MAILWAVE_WAVES_DIR="+t.TempDir()) // the roster store, unless a test names one
	cmd.Env = append(cmd.Env, testkit.TestKeysEnv()...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return string(out), exit.ExitCode()
	}
	require.NoError(t, err)
	return string(out), 0
}

func TestBadInputIsRefusedWithAClearError(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"address format", []string{"--address", "jo.bloggs-at-trust", "--migrate-at", "+15d"}, "is not an email address"},
		{"display name form", []string{"--address", "Jo <jo@trust.nhs.example>", "--migrate-at", "+15d"}, "not a bare email address"},
		{"time in the past", []string{"--address", "jo@trust.nhs.example", "--migrate-at", "2020-01-01T00:00:00Z"}, "is in the past"},
		{"unreadable time", []string{"--address", "jo@trust.nhs.example", "--migrate-at", "soon"}, "is not a time"},
		{"short notice", []string{"--address", "jo@trust.nhs.example", "--migrate-at", "+3d"}, "less than the notice lead"},
		{"bad lead", []string{"--address", "jo@trust.nhs.example", "--migrate-at", "+15d", "--notice-lead", "fortnight"}, "--notice-lead"},
		{"unreachable server", []string{"--address", "jo@trust.nhs.example", "--migrate-at", "+15d",
			"--temporal-address", "127.0.0.1:1", "--dial-timeout", "2s"}, "cannot reach the Temporal server at 127.0.0.1:1"},
		{"missing flag", []string{"--migrate-at", "+15d"}, `required flag(s) "address" not set`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, code := runStarter(t, append([]string{"mailbox", "start"}, tc.args...)...)
			assert.NotZero(t, code, "exit status")
			assert.Contains(t, out, tc.want)
			assert.NotContains(t, out, "panic")
		})
	}
}

func TestNoSecretIsAClearError(t *testing.T) {
	var out bytes.Buffer
	root := newRootCmd(&out)
	t.Setenv("MAILWAVE_KEY_SECRET", "")
	root.SetArgs([]string{"mailbox", "status", "--address", "jo@trust.nhs.example"})
	assert.ErrorContains(t, root.Execute(), "no key secret")
}

// TestMailboxCommandsOnARealServer starts, inspects, pauses and resumes a
// mailbox through the CLI against a real dev server and worker, and checks
// that a mailbox is never started twice.
func TestMailboxCommandsOnARealServer(t *testing.T) {
	dir := t.TempDir()
	estateDir := filepath.Join(dir, "estate")
	_, err := sim.Generate(estateDir, sim.GenerateOptions{Seed: 3, Mailboxes: 5})
	require.NoError(t, err)
	est, err := sim.Open(estateDir, sim.Options{})
	require.NoError(t, err)
	roster, err := est.Roster()
	require.NoError(t, err)
	address := roster[0].Address

	srv := testkit.NewDevServer(t, "")
	testkit.StartWorker(t, srv.Client(), workerapp.Config{
		TaskQueue: contract.TaskQueue, Notifier: "outbox", OutboxDir: filepath.Join(dir, "outbox"),
		Estate: "sim", Sim: config.Sim{Dir: estateDir, Instant: true},
		MaxConcurrentActivities: 10, MaxConcurrentLocalActivities: 10, MaxConcurrentWorkflowTasks: 10,
	})

	server := []string{"--temporal-address", srv.FrontendHostPort()}
	starter := func(args ...string) (string, int) { return runStarter(t, append(args, server...)...) }

	out, code := starter("mailbox", "status", "--address", address)
	assert.NotZero(t, code)
	assert.Contains(t, out, "no migration found")

	// T-1 comes 12 s after the start: the duplicate start and the pause
	// below (two starter processes) have that long on a loaded machine.
	out, code = starter("mailbox", "start", "--address", address, "--migrate-at", "+14s",
		"--notice-lead", "6s", "--reminder-lead", "2s")
	require.Zero(t, code, out)
	reminderBy := time.Now().Add(12 * time.Second) // T-1, at the latest
	assert.Contains(t, out, "started mailbox")
	assert.NotContains(t, out, address, "the address is not echoed back")

	out, code = starter("mailbox", "start", "--address", address, "--migrate-at", "+1h", "--notice-lead", "1m", "--reminder-lead", "30s")
	assert.NotZero(t, code)
	assert.Contains(t, out, "already being migrated (started on its own, not in a wave)")

	out, code = starter("mailbox", "pause", "--address", address, "--reason", "checking")
	require.Zero(t, code, out)
	require.Eventually(t, func() bool {
		out, _ = starter("mailbox", "status", "--address", address)
		return strings.Contains(out, "stage     paused")
	}, 30*time.Second, 500*time.Millisecond, "the mailbox holds at a step boundary: %s", out)
	time.Sleep(time.Until(reminderBy.Add(3 * time.Second))) // past T-1: a running mailbox would have had its reminder by now
	out, _ = starter("mailbox", "status", "--address", address)
	assert.Contains(t, out, "stage     paused")
	assert.NotContains(t, out, "t14, t1", "no reminder while held")

	out, code = starter("mailbox", "resume", "--address", address)
	require.Zero(t, code, out)
	require.Eventually(t, func() bool {
		out, _ = starter("mailbox", "status", "--address", address)
		return strings.Contains(out, "outcome   migrated")
	}, 60*time.Second, time.Second, "the mailbox finishes after resume: %s", out)
	assert.Contains(t, out, "sent      t14, t1, success")

	out, code = starter("mailbox", "start", "--address", address, "--migrate-at", "+1h", "--notice-lead", "1m", "--reminder-lead", "30s")
	assert.NotZero(t, code)
	assert.Contains(t, out, "already migrated")

	out, code = starter("mailbox", "pause", "--address", roster[1].Address)
	assert.NotZero(t, code)
	assert.Contains(t, out, "has no running migration")
}

// `mailbox start` with another key secret than the deployment began with is
// refused before it connects: its key would start a second migration.
func TestMailboxStartRefusesAnotherKeySecret(t *testing.T) {
	waves := t.TempDir()
	args := []string{"mailbox", "start", "--address", "jo@trust.nhs.example", "--migrate-at", "+15d",
		"--waves-dir", waves, "--temporal-address", "127.0.0.1:1", "--dial-timeout", "1s"}
	out, code := runStarter(t, args...)
	require.NotZero(t, code)
	assert.Contains(t, out, "cannot reach the Temporal server", "the first secret is recorded, then the dial fails")

	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "MAILWAVE_RUN_STARTER=1", "MAILWAVE_KEY_SECRET=another-secret-entirely-42")
	cmd.Env = append(cmd.Env, testkit.TestKeysEnv()...)
	b, err := cmd.CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(b), "but this deployment began with")
	assert.NotContains(t, string(b), "cannot reach", "refused before connecting")
}

// TestMailboxStartRefusesAnUnknownOrganisation: --org becomes the
// plain-text search attribute MailwaveOrg, so only a configured
// organisation's name is taken, before anything starts.
func TestMailboxStartRefusesAnUnknownOrganisation(t *testing.T) {
	waves := t.TempDir()
	start := func(org string) (string, int) {
		return runStarter(t, "mailbox", "start", "--address", "jo@trust-a.nhs.example", "--migrate-at", "+15d", "--org", org,
			"--waves-dir", waves, "--temporal-address", "127.0.0.1:1", "--dial-timeout", "1s")
	}
	out, code := start("Jo Bloggs")
	assert.NotZero(t, code)
	assert.Contains(t, out, `--org "Jo Bloggs" is not a configured organisation`)
	assert.NotContains(t, out, "cannot reach", "refused before connecting")

	out, code = runStarter(t, "programme", "import", writeCSV(t, "estate.csv", "address,org\njo@trust-a.nhs.example,Trust-A\n"), "--waves-dir", waves)
	require.Zero(t, code, out)
	out, _ = start("Jo Bloggs")
	assert.Contains(t, out, `--org "Jo Bloggs" is not a configured organisation`)
	out, code = start("trust-a")
	assert.NotZero(t, code)
	assert.Contains(t, out, "cannot reach the Temporal server", "a configured organisation goes on")
}

// TestStarterWarnsOnceAtStart: a plain-text connection to a Temporal
// server that is not on loopback, and debug logging, are each said once, at
// warn level, however many times the command dials.
func TestStarterWarnsOnceAtStart(t *testing.T) {
	out, code := runStarter(t, "wave", "status", "--wave", "w1", "--temporal-address", "192.0.2.1:7233", "--dial-timeout", "500ms",
		"--log-level", "debug")
	assert.NotZero(t, code, "nothing answers there")
	assert.Equal(t, 1, strings.Count(out, "INSECURE: the connection to the Temporal server at 192.0.2.1:7233 is plain text"), out)
	assert.Equal(t, 1, strings.Count(out, "debug logging is on"), out)
	assert.Contains(t, out, "WARN")

	out, _ = runStarter(t, "wave", "status", "--wave", "w1", "--temporal-address", "127.0.0.1:1", "--dial-timeout", "500ms")
	assert.NotContains(t, out, "INSECURE", "loopback is not warned of")
	assert.NotContains(t, out, "debug logging")
}
