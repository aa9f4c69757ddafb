package e2e_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	tlog "go.temporal.io/sdk/log"

	"mailwave/contract"
	"mailwave/contract/metrics"
	"mailwave/identity"
	"mailwave/internal/connect"
	"mailwave/testkit"
	"mailwave/testkit/prometheus"
	"mailwave/worker/config"
	"mailwave/worker/registry"
	"mailwave/worker/workerapp"
)

// metricsRetryAfter is the injected throttle replies' delay.
const metricsRetryAfter = 200 * time.Millisecond

// TestMetricsInPrometheus runs a small wave with injected faults (transient
// errors, throttling, missing mailboxes) on a worker serving its metrics,
// scraped every second by a real Prometheus, and checks through
// Prometheus's HTTP API that the counters moved by exactly what the wave
// did: mailboxes by outcome, notices by kind (the outbox's files), bytes
// and messages copied (the wave's figures and the verifier's), cutovers,
// throttle replies and their delays; that the SDK's worker metrics and
// every metric the dashboard shows are there; and that no series carries a
// mailbox's key or address.
func TestMetricsInPrometheus(t *testing.T) {
	const n = 30
	prometheus.Need(t, "prometheus", prometheus.BinEnv)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	srv := testkit.NewDevServer(t, "")
	reg := registry.New(func(err error) { t.Errorf("metrics: %v", err) })
	addr, err := reg.Serve("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, reg.Close()) })
	prom := prometheus.Start(t, []string{addr}, time.Second)

	// The worker's own client, built as the worker builds it, with the
	// registry's handler: the SDK's metrics go where mailwave's do. Its
	// log (every injected fault) goes to a file.
	dir := t.TempDir()
	logFile, err := os.Create(filepath.Join(dir, "worker.log"))
	require.NoError(t, err)
	logger := tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelWarn})))
	c, err := connect.Options{Address: srv.FrontendHostPort(), Keys: testkit.TestKeyRing(), Metrics: reg.Handler()}.Dial(ctx, logger)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close(); _ = logFile.Close() })

	est := testkit.NewEstate(t, 21, n)
	keyer, err := identity.NewKeyer([]byte("metrics-integration-secret"))
	require.NoError(t, err)
	testkit.StartWorker(t, c, workerapp.Config{
		TaskQueue: contract.TaskQueue, Notifier: "outbox", OutboxDir: filepath.Join(dir, "outbox"),
		Estate: "sim",
		// About 3 GB a second: a copy takes a second or two, so the
		// scrapes see copies in flight. The tenant limit is far above
		// that: it gives the worker an adaptive rate to report, and
		// refuses nothing.
		Sim: config.Sim{Dir: est.Dir, TimeScale: 1000, BytesPerSecond: 3 << 20, TenantBytesPerSecond: 1 << 30,
			TransientRate: 0.02, ThrottleRate: 0.02, ThrottleRetryAfter: metricsRetryAfter, NotFoundRate: 0.1},
		WavesDir:                filepath.Join(dir, "waves"),
		MaxConcurrentActivities: 50, MaxConcurrentLocalActivities: 50, MaxConcurrentWorkflowTasks: 20,
		ShutdownTimeout: 5 * time.Second,
		Metrics:         reg.Handler(),
	})

	e := &waveEnv{t: t, c: c, dir: dir, estate: est, keyer: keyer}
	in := e.launch(ctx, contract.WaveInput{
		WaveID: "it-metrics", MigrateAt: time.Now().Add(8 * time.Second),
		NoticeLead: 4 * time.Second, ReminderLead: 2 * time.Second, Cap: 10, StartRate: 100,
	})
	var res contract.WaveResult
	require.NoError(t, c.GetWorkflow(ctx, contract.WaveWorkflowID(in.WaveID), "").Get(ctx, &res))
	t.Logf("wave: %d migrated, %d need support, %d bytes, %d messages, in %s",
		res.Migrated, res.NeedsSupport, res.Copied.Bytes, res.Copied.Items, res.Duration)
	require.Equal(t, n, res.Migrated+res.NeedsSupport, "every mailbox finished")
	require.Positive(t, res.NeedsSupport, "the faults left some mailboxes needing support")
	rep := e.verify(ctx)

	// What the wave did, from the wave, the outbox and the verifier.
	want := map[string]float64{
		`sum(` + metrics.CopiedBytes + `)`:    float64(res.Copied.Bytes),
		`sum(` + metrics.CopiedItems + `)`:    float64(res.Copied.Items),
		`sum(` + metrics.Cutovers + `)`:       float64(rep.Totals.CutOver),
		`sum(` + metrics.CopiesInFlight + `)`: 0,
	}
	for _, o := range []contract.Outcome{contract.OutcomeMigrated, contract.OutcomeNeedsSupport} {
		count := map[contract.Outcome]int{contract.OutcomeMigrated: res.Migrated, contract.OutcomeNeedsSupport: res.NeedsSupport}[o]
		want[fmt.Sprintf(`sum(%s{outcome=%q})`, metrics.MailboxesFinished, o)] = float64(count)
	}
	for kind, count := range outboxNotices(t, filepath.Join(dir, "outbox")) {
		want[fmt.Sprintf(`sum(%s{kind=%q})`, metrics.NoticesSent, kind)] = float64(count)
	}
	require.Contains(t, want, fmt.Sprintf(`sum(%s{kind="failure"})`, metrics.NoticesSent), "the outbox holds failure notices")
	assert.Equal(t, float64(rep.Totals.TargetItems), want[`sum(`+metrics.CopiedItems+`)`], "the verifier counts on the target what the wave copied")
	assert.Equal(t, res.Migrated, rep.Totals.CutOver)

	got := waitForFigures(ctx, t, prom, want)
	for q, v := range want {
		assert.Equal(t, v, got[q], "%s", q)
	}

	// Throttle replies: some, and each with the delay the target asked for.
	throttled := queryOne(ctx, t, prom, `sum(`+metrics.Throttled+`)`)
	assert.Positive(t, throttled, "the injected throttling was counted")
	assert.Equal(t, throttled, queryOne(ctx, t, prom, `sum(`+metrics.ThrottleRetryAfter+`_count)`))
	assert.InDelta(t, throttled*metricsRetryAfter.Seconds(), queryOne(ctx, t, prom, `sum(`+metrics.ThrottleRetryAfter+`_sum)`), 1e-6)

	// Copies were in flight during the wave, and the adaptive rate is known.
	assert.GreaterOrEqual(t, queryOne(ctx, t, prom, `max_over_time(sum(`+metrics.CopiesInFlight+`)[10m:1s])`), 1.0)
	assert.Positive(t, queryOne(ctx, t, prom, fmt.Sprintf(`sum(%s{organisation="default"})`, metrics.CopyRate)))

	// The SDK's worker metrics and every metric the dashboard shows.
	for _, name := range append(metrics.Own(), metrics.SDK()...) {
		if slices.Contains(metrics.Histograms(), name) {
			name += "_bucket"
		}
		assert.Positive(t, queryOne(ctx, t, prom, fmt.Sprintf(`count({__name__=%q})`, name)), "no %s in Prometheus", name)
	}
	assert.Positive(t, queryOne(ctx, t, prom, fmt.Sprintf(`sum(%s{worker_type="ActivityWorker"})`, metrics.SDKTaskSlotsAvailable)))

	assertBoundedLabels(ctx, t, prom, est.Addresses(), e)
}

// outboxNotices counts the outbox's notice files (<key>-<kind>.eml) by
// kind.
func outboxNotices(t *testing.T, dir string) map[string]int {
	t.Helper()
	files, err := os.ReadDir(dir)
	require.NoError(t, err)
	count := map[string]int{}
	for _, f := range files {
		name, ok := strings.CutSuffix(f.Name(), ".eml")
		if !ok {
			continue
		}
		i := strings.LastIndex(name, "-")
		require.Positive(t, i, "outbox file %s", f.Name())
		count[name[i+1:]]++
	}
	for _, kind := range contract.AllNoticeKinds {
		if _, ok := count[string(kind)]; !ok && !kind.ToAdmin() && kind != contract.NoticeRescheduled {
			t.Errorf("no %s notice in the outbox", kind)
		}
	}
	return count
}

// waitForFigures queries until every query answers its wanted figure (the
// last counts reach the registry within a second, and Prometheus within
// one more scrape), or for half a minute, and returns the last answers.
func waitForFigures(ctx context.Context, t *testing.T, prom *prometheus.Server, want map[string]float64) map[string]float64 {
	t.Helper()
	got := map[string]float64{}
	deadline := time.Now().Add(30 * time.Second)
	for {
		same := true
		for q, v := range want {
			got[q] = queryOne(ctx, t, prom, q)
			same = same && got[q] == v
		}
		if same || time.Now().After(deadline) {
			return got
		}
		time.Sleep(time.Second)
	}
}

// queryOne answers a query of one figure; no series is 0.
func queryOne(ctx context.Context, t *testing.T, prom *prometheus.Server, q string) float64 {
	t.Helper()
	samples, err := prom.Query(ctx, q)
	require.NoError(t, err)
	require.LessOrEqual(t, len(samples), 1, "%s: %v", q, samples)
	if len(samples) == 0 {
		return 0
	}
	return samples[0].Value
}

// assertBoundedLabels checks every series of mailwave's metrics: only
// labels with a small fixed set of values, and no mailbox's key or address
// in any of them.
func assertBoundedLabels(ctx context.Context, t *testing.T, prom *prometheus.Server, addresses []string, e *waveEnv) {
	t.Helper()
	allowed := []string{
		"__name__", "job", "instance", "le",
		metrics.TagPass, metrics.TagActivity, metrics.TagKind, metrics.TagOrganisation, metrics.TagOutcome,
		// The SDK's, on what workflows emit through their handler.
		"namespace", "task_queue", "workflow_type", "activity_type", "client_name", "worker_type",
	}
	personal := map[string]bool{}
	for _, a := range addresses {
		key, err := e.keyer.Key(a)
		require.NoError(t, err)
		personal[a], personal[key] = true, true
	}
	series, err := prom.Series(ctx, `{__name__=~"mailwave_.+"}`)
	require.NoError(t, err)
	require.NotEmpty(t, series)
	for _, s := range series {
		for label, value := range s {
			assert.Contains(t, allowed, label, "series %v", s)
			assert.False(t, personal[value], "series %v names a mailbox", s)
		}
	}
	t.Logf("%d series of mailwave's metrics", len(series))
}
