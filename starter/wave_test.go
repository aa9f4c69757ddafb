package main

import (
	"encoding/json"
	"fmt"
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
	"mailwave/starter/report"
	"mailwave/testkit"
	"mailwave/worker/config"
	"mailwave/worker/workerapp"
)

// writeCSV writes a mailbox CSV in a temp dir.
func writeCSV(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

func TestWaveLaunchRefusesBadFilesBeforeAnything(t *testing.T) {
	// No server at all: every one of these is refused before any is needed.
	noServer := []string{"--temporal-address", "127.0.0.1:1", "--dial-timeout", "1s"}
	cases := []struct {
		name, file string
		want       []string
	}{
		{"malformed lines", "address,org\njo@trust.nhs.example,T1\nnot-an-address,T1\nal@trust.nhs.example,T1,extra\n,T2\n",
			[]string{"line 3", "not an email address", "line 4", "line 5"}},
		{"duplicates", "address\njo@trust.nhs.example\nal@trust.nhs.example\nJO@trust.nhs.example\n",
			[]string{"line 4", "duplicate of line 2"}},
		{"empty file", "", []string{"empty"}},
		{"header only", "address,org,display_name\n", []string{"has no mailboxes"}},
		{"no address column", "email\njo@trust.nhs.example\n", []string{"address"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writeCSV(t, "mailboxes.csv", tc.file)
			out, code := runStarter(t, append([]string{"wave", "launch", "--wave", "w1", "--mailboxes", path, "--migrate-at", "+15d"}, noServer...)...)
			assert.NotZero(t, code)
			for _, w := range tc.want {
				assert.Contains(t, out, w)
			}
			assert.NotContains(t, out, "cannot reach", "the file is judged before the server is asked")
		})
	}
}

// TestWaveLaunchRefusesAnUnknownOrganisation: the org column reaches a
// plain-text search attribute, so a list naming an organisation the estate
// does not know (a person's name typed there) is refused, naming the file
// and the line, before the server is asked and before anything is written.
func TestWaveLaunchRefusesAnUnknownOrganisation(t *testing.T) {
	noServer := []string{"--temporal-address", "127.0.0.1:1", "--dial-timeout", "1s"}
	wavesDir := filepath.Join(t.TempDir(), "waves")
	list := writeCSV(t, "mailboxes.csv", "address,org\njo@trust-a.nhs.example,trust-a\nal@trust-a.nhs.example,Jo Bloggs\nmo@gp.nhs.example,\n")
	launch := func(path string) (string, int) {
		return runStarter(t, append([]string{"wave", "launch", "--wave", "w1", "--mailboxes", path, "--migrate-at", "+15d",
			"--waves-dir", wavesDir}, noServer...)...)
	}

	// No estate yet: no organisation is configured.
	out, code := launch(list)
	assert.NotZero(t, code)
	assert.Contains(t, out, `mailboxes.csv line 2: the org "trust-a" is not a configured organisation`)
	assert.Contains(t, out, `mailboxes.csv line 3: the org "Jo Bloggs" is not a configured organisation`)
	assert.Contains(t, out, "starter programme import")
	assert.NotContains(t, out, "cannot reach", "refused before the server is asked")

	estateCSV := writeCSV(t, "estate.csv", "address,org\njo@trust-a.nhs.example,Trust-A\nmo@gp.nhs.example,gp-1\n")
	out, code = runStarter(t, "programme", "import", estateCSV, "--waves-dir", wavesDir)
	require.Zero(t, code, out)
	out, code = launch(list)
	assert.NotZero(t, code)
	assert.Contains(t, out, `mailboxes.csv line 3: the org "Jo Bloggs" is not a configured organisation`)
	assert.NotContains(t, out, "line 2", "trust-a is Trust-A, configured")
	assert.NotContains(t, out, "cannot reach", "refused before the server is asked")
	assert.NoFileExists(t, filepath.Join(wavesDir, "w1.csv"))

	// Every org configured (or empty): the launch goes on to the server.
	good := writeCSV(t, "good.csv", "address,org\njo@trust-a.nhs.example,trust-a\nmo@gp.nhs.example,\n")
	out, code = launch(good)
	assert.NotZero(t, code)
	assert.Contains(t, out, "cannot reach the Temporal server", out)
}

func TestWaveLaunchChecksItsFlags(t *testing.T) {
	path := writeCSV(t, "m.csv", "address\njo@trust.nhs.example\n")
	noServer := []string{"--temporal-address", "127.0.0.1:1", "--dial-timeout", "1s"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--wave", "bad id!", "--mailboxes", path, "--migrate-at", "+15d"}, "--wave \"bad id!\""},
		{[]string{"--wave", "w1", "--migrate-at", "+15d"}, "either --mailboxes"},
		{[]string{"--wave", "w1", "--roster", path, "--migrate-at", "+15d"}, "--roster needs --sample-percent"},
		{[]string{"--wave", "w1", "--mailboxes", path, "--migrate-at", "+2d"}, "less than the notice lead"},
		{[]string{"--wave", "w1", "--mailboxes", path, "--migrate-at", "+15d", "--concurrency", "0"}, "--concurrency 0"},
		{[]string{"--wave", "w1", "--mailboxes", path, "--migrate-at", "+15d", "--error-budget", "150"}, "--error-budget 150"},
		{[]string{"--wave", "w1", "--mailboxes", path, "--migrate-at", "+15d", "--sizes", path}, "--sizes is for planning a pre-staged wave: add --dry-run --prestage"},
		{[]string{"--wave", "w1", "--mailboxes", path, "--migrate-at", "+15d", "--prestage", "--dry-run", "--assume-gb", "0"}, "--assume-gb 0"},
		{[]string{"--wave", "w1", "--mailboxes", path, "--migrate-at", "+15d"}, "cannot reach the Temporal server"},
	} {
		out, code := runStarter(t, append(append([]string{"wave", "launch"}, tc.args...), noServer...)...)
		assert.NotZero(t, code, tc.args)
		assert.Contains(t, out, tc.want, tc.args)
	}
}

// TestWaveCommandsOnARealServer launches waves through the CLI against a
// real dev server and worker: a 100,000-row file, a second launch under the
// same ID, an unknown wave, and a small wave watched to its end.
func TestWaveCommandsOnARealServer(t *testing.T) {
	dir := t.TempDir()
	_, err := sim.Generate(filepath.Join(dir, "estate"), sim.GenerateOptions{Seed: 5, Mailboxes: 3})
	require.NoError(t, err)
	srv := testkit.NewDevServer(t, "")
	outboxDir := filepath.Join(dir, "outbox")
	testkit.StartWorker(t, srv.Client(), workerapp.Config{
		TaskQueue: contract.TaskQueue, Notifier: "outbox", OutboxDir: outboxDir,
		Estate: "sim", Sim: config.Sim{Dir: filepath.Join(dir, "estate"), Instant: true},
		WavesDir:                filepath.Join(dir, "waves"),
		MaxConcurrentActivities: 20, MaxConcurrentLocalActivities: 20, MaxConcurrentWorkflowTasks: 20,
	})
	server := []string{"--temporal-address", srv.FrontendHostPort()}
	starter := func(args ...string) (string, int) { return runStarter(t, append(args, server...)...) }
	wavesDir := filepath.Join(dir, "waves")

	// The big file's organisations are configured: the estate's.
	var orgs strings.Builder
	orgs.WriteString("address,org\n")
	for i := range 500 {
		fmt.Fprintf(&orgs, "admin@trust%03d.nhs.example,Trust %d\n", i, i)
	}
	out, code := starter("programme", "import", writeCSV(t, "estate.csv", orgs.String()), "--waves-dir", wavesDir)
	require.Zero(t, code, out)

	// A 100,000-row file is read, checked and keyed; nothing starts on a dry run.
	var big strings.Builder
	big.WriteString("address,org,display_name\n")
	for i := range 100_000 {
		fmt.Fprintf(&big, "user%06d@trust%03d.nhs.example,Trust %d,User %d\n", i, i%500, i%500, i)
	}
	bigPath := writeCSV(t, "big.csv", big.String())
	out, code = starter("wave", "launch", "--wave", "big", "--mailboxes", bigPath, "--migrate-at", "+15d",
		"--waves-dir", wavesDir, "--dry-run")
	require.Zero(t, code, out)
	assert.Contains(t, out, "wave big: 100000 mailboxes")
	assert.Contains(t, out, "dry run: nothing written, nothing started")
	assert.NoFileExists(t, filepath.Join(wavesDir, "big.csv"))
	// A pre-staged dry run plans the wave's passes from the estate's
	// sizes: a 600 GB mailbox cannot be copied in the lead at 0.45 MB/s,
	// named by its key, never its address.
	sizes := writeCSV(t, "sizes.csv", "address,org,size_mb\nuser000001@trust001.nhs.example,Trust 1,2000\n"+
		"user000002@trust002.nhs.example,Trust 2,600000\n")
	three := writeCSV(t, "three.csv", "address\nuser000001@trust001.nhs.example\nuser000002@trust002.nhs.example\nuser000003@trust003.nhs.example\n")
	out, code = starter("wave", "launch", "--wave", "three", "--mailboxes", three, "--migrate-at", "+15d",
		"--waves-dir", wavesDir, "--dry-run", "--prestage", "--sizes", sizes)
	require.Zero(t, code, out)
	assert.Contains(t, out, "plan: 3 mailboxes (1 sizes assumed 1 GB), 0.60 TB")
	assert.Contains(t, out, "mailboxes that cannot be done: 1; TooLargeForLeadTime 1")
	assert.Regexp(t, `mailbox [0-9a-f]+: TooLargeForLeadTime: 600000000000 bytes need 370\.\d h at the per-mailbox pace`, out)
	assert.NotContains(t, out, "@", "no address in the plan")
	assert.Contains(t, out, "dry run: nothing written, nothing started")
	big.WriteString("one.more@trust001.nhs.example,Trust 1,One More\n")
	tooBig := writeCSV(t, "too-big.csv", big.String())
	out, code = starter("wave", "launch", "--wave", "big", "--mailboxes", tooBig, "--migrate-at", "+15d", "--waves-dir", wavesDir)
	assert.NotZero(t, code)
	assert.Contains(t, out, "a wave takes at most 100000: split it into waves")

	// Unknown waves.
	for _, verb := range []string{"status", "pause", "resume", "cancel", "retry-failed"} {
		out, code = starter("wave", verb, "--wave", "nowhere")
		assert.NotZero(t, code, verb)
		assert.Contains(t, out, `no wave "nowhere"`, verb)
	}

	// A small wave, watched to its end; its ID cannot be used again.
	small := writeCSV(t, "small.csv", "address,display_name\njo@trust.nhs.example,Jo\nal@trust.nhs.example,Al\nmo@gp.nhs.example,Mo\n")
	out, code = starter("wave", "launch", "--wave", "small", "--mailboxes", small, "--migrate-at", "+6s",
		"--notice-lead", "4s", "--reminder-lead", "2s", "--concurrency", "2", "--waves-dir", wavesDir)
	require.Zero(t, code, out)
	assert.Contains(t, out, "launched wave small")
	assert.NotContains(t, out, "jo@trust.nhs.example", "addresses are not echoed")
	out, code = starter("wave", "launch", "--wave", "small", "--mailboxes", small, "--migrate-at", "+1h",
		"--notice-lead", "30m", "--reminder-lead", "10m", "--waves-dir", wavesDir)
	assert.NotZero(t, code)
	assert.Contains(t, out, "wave small already exists")

	// The sim estate has none of these mailboxes: each ends in needs support.
	csvPath := filepath.Join(dir, "small-report.csv")
	out, code = starter("wave", "status", "--wave", "small", "--watch", "--csv", csvPath)
	require.Zero(t, code, out)
	assert.Contains(t, out, "finished in")
	assert.Contains(t, out, "needs support 3")
	// Not a terminal: plain progress lines, no bar redrawn in place.
	assert.Contains(t, out, "small: waiting ")
	assert.Regexp(t, `3 of 3 done \(100\.0%\), \d+s elapsed\n`, out)
	assert.NotContains(t, out, "\r", "no bar frames")
	stageCSV, err := os.ReadFile(csvPath)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(stageCSV)), "\n")
	assert.Equal(t, "key,workflow_id,status,stage,stage_since", lines[0])
	assert.Len(t, lines, 4)
	assert.NotContains(t, string(stageCSV), "@", "the report names mailboxes by key")

	// The real workflows publish what the operator views read: the error
	// type as a search attribute, the summary in the memo, the progress.
	listed, errOut, code := runStarterSplit(t, append([]string{"mailbox", "list", "--wave", "small", "--error-type", "MailboxNotFound", "--output", "json"}, server...)...)
	require.Zero(t, code, errOut)
	var rows []map[string]any
	require.NoError(t, json.Unmarshal([]byte(listed), &rows), listed)
	assert.Len(t, rows, 3)
	summaryOut, errOut, code := runStarterSplit(t, append([]string{"wave", "report", "--wave", "small", "--output", "json"}, server...)...)
	require.Zero(t, code, errOut)
	var sum report.Summary
	require.NoError(t, json.Unmarshal([]byte(summaryOut), &sum), summaryOut)
	assert.Equal(t, report.OrgSummary{Org: report.AllOrgs, Mailboxes: 3, NeedsSupport: 3, SupportShare: 1, Budget: report.BudgetOver,
		Poor: 3}, sum.Total, "MailboxNotFound in the bulk copy grades poor")
	statusOut, errOut, code := runStarterSplit(t, append([]string{"wave", "status", "--wave", "small", "--output", "json"}, server...)...)
	require.Zero(t, code, errOut)
	var st map[string]any
	require.NoError(t, json.Unmarshal([]byte(statusOut), &st), statusOut)
	assert.Equal(t, "result", st["source"])
	assert.Equal(t, "finished", st["state"])
	out, code = starter("wave", "pause", "--wave", "small")
	assert.NotZero(t, code)
	assert.Contains(t, out, "has finished")

	// The same mailboxes in a new wave: they ended in needs support, so they
	// may run again; one already running elsewhere may not.
	out, code = starter("wave", "launch", "--wave", "small-2", "--mailboxes", small, "--migrate-at", "+1h",
		"--notice-lead", "30m", "--reminder-lead", "10m", "--waves-dir", wavesDir)
	require.Zero(t, code, out)
	// small-2 starts its mailboxes on its own time: small-3 is launched once
	// it has, or it might take them first.
	require.Eventually(t, func() bool {
		out, _ = starter("wave", "status", "--wave", "small-2")
		return strings.Contains(out, "mailboxes     3 (started 3, refused 0)")
	}, 30*time.Second, 500*time.Millisecond, "small-2 did not start its mailboxes: %s", out)
	out, code = starter("wave", "launch", "--wave", "small-3", "--mailboxes", small, "--migrate-at", "+1h",
		"--notice-lead", "30m", "--reminder-lead", "10m", "--waves-dir", wavesDir)
	require.Zero(t, code, out)
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _ = starter("wave", "status", "--wave", "small-3")
		if strings.Contains(out, "refused       #2") || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	assert.Contains(t, out, "refused       #2", "mailboxes running in small-2 are refused in small-3")
	assert.Contains(t, out, "mailboxes     3 (started 0, refused 3)")
	assert.Contains(t, out, "already being migrated in wave small-2")

	// Purge: not while the wave runs; a finished wave's roster goes, but
	// not the notice files of its mailboxes now running in small-2.
	out, code = starter("wave", "purge", "--wave", "small-2", "--waves-dir", wavesDir, "--outbox-dir", outboxDir)
	assert.NotZero(t, code)
	assert.Contains(t, out, "still running")
	before, err := filepath.Glob(filepath.Join(outboxDir, "*.eml"))
	require.NoError(t, err)
	require.NotEmpty(t, before)
	out, code = starter("wave", "purge", "--wave", "small", "--waves-dir", wavesDir, "--outbox-dir", outboxDir)
	require.Zero(t, code, out)
	assert.Contains(t, out, "purged wave small: its roster (3 mailboxes), 0 outbox messages")
	assert.Contains(t, out, "kept the notice files of 3 mailboxes")
	assert.NoFileExists(t, filepath.Join(wavesDir, "small.csv"))
	assert.FileExists(t, filepath.Join(wavesDir, "small-2.csv"))
	after, err := filepath.Glob(filepath.Join(outboxDir, "*.eml"))
	require.NoError(t, err)
	assert.Equal(t, before, after)

	// A finished wave whose mailbox runs nowhere else loses its notices.
	solo := writeCSV(t, "solo.csv", "address\nsolo@trust.nhs.example\n")
	out, code = starter("wave", "launch", "--wave", "solo", "--mailboxes", solo, "--migrate-at", "+4s",
		"--notice-lead", "3s", "--reminder-lead", "2s", "--waves-dir", wavesDir)
	require.Zero(t, code, out)
	out, code = starter("wave", "status", "--wave", "solo", "--watch")
	require.Zero(t, code, out)
	out, code = starter("wave", "purge", "--wave", "solo", "--waves-dir", wavesDir, "--outbox-dir", outboxDir)
	require.Zero(t, code, out)
	assert.Contains(t, out, "purged wave solo: its roster (1 mailboxes), 3 outbox messages") // T-14, T-1, the admin's failure notice
	gone, err := filepath.Glob(filepath.Join(outboxDir, "*.eml"))
	require.NoError(t, err)
	assert.Equal(t, before, gone, "solo's three are gone, small's kept")

	// A starter with another key secret would key the same mailboxes
	// differently: refused before anything starts.
	cmd := exec.Command(os.Args[0], append([]string{"wave", "launch", "--wave", "other-secret", "--mailboxes", small, "--migrate-at", "+1h",
		"--notice-lead", "30m", "--reminder-lead", "10m", "--waves-dir", wavesDir}, server...)...)
	cmd.Env = append(os.Environ(), "MAILWAVE_RUN_STARTER=1", "MAILWAVE_KEY_SECRET=a-different-secret-4567")
	cmd.Env = append(cmd.Env, testkit.TestKeysEnv()...)
	b, err := cmd.CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(b), "but this deployment began with")
	assert.NoFileExists(t, filepath.Join(wavesDir, "other-secret.csv"))
}
