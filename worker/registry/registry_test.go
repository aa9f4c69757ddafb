package registry_test

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/contract/metrics"
	"mailwave/worker/registry"
)

// errs collects what a registry reports.
type errs struct {
	mu  sync.Mutex
	got []error
}

func (e *errs) add(err error) { e.mu.Lock(); e.got = append(e.got, err); e.mu.Unlock() }
func (e *errs) list() []error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]error(nil), e.got...)
}

// scrape reads the served metrics until every line of want shows (the
// figures reach the registry at the next report), or fails after a few
// report intervals.
func scrape(t *testing.T, addr string, want []string) string {
	t.Helper()
	var body string
	has := func() bool {
		for _, w := range want {
			if !strings.Contains(body, w+"\n") {
				return false
			}
		}
		return true
	}
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + registry.Path)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return has()
	}, 5*registry.ReportEvery, 100*time.Millisecond, "not all of %q showed in:\n%s", want, body)
	return body
}

// TestPrometheusNames emits through the handler as mailwave and the
// workflow do and reads the names Prometheus scrapes: a counter gets
// "_total" once, a timer is a histogram in seconds with buckets up to ten
// minutes.
func TestPrometheusNames(t *testing.T) {
	var e errs
	r := registry.New(e.add)
	addr, err := r.Serve("127.0.0.1:0")
	require.NoError(t, err)
	defer func() { assert.NoError(t, r.Close()) }()

	h := r.Handler()
	h.WithTags(map[string]string{metrics.TagOutcome: string(contract.OutcomeMigrated)}).Counter(contract.MetricMailboxesFinished).Inc(2)
	h.WithTags(map[string]string{metrics.TagPass: "bulk"}).Counter(metrics.CopiedBytes).Inc(5)
	h.WithTags(map[string]string{metrics.TagActivity: contract.ActivityCopyMailbox}).Timer(metrics.ThrottleRetryAfter).Record(300 * time.Second)
	h.Gauge(metrics.CopiesInFlight).Update(3)
	h.WithTags(map[string]string{metrics.TagOrganisation: "st-mary's trust"}).Gauge(metrics.CopyRate).Update(1e6)

	body := scrape(t, addr, []string{
		metrics.MailboxesFinished + `{outcome="migrated"} 2`,
		metrics.CopiedBytes + `{pass="bulk"} 5`,
		metrics.ThrottleRetryAfter + `_bucket{activity="CopyMailbox",le="120"} 0`,
		metrics.ThrottleRetryAfter + `_bucket{activity="CopyMailbox",le="300"} 1`,
		metrics.ThrottleRetryAfter + `_sum{activity="CopyMailbox"} 300`,
		metrics.CopiesInFlight + ` 3`,
		// Label values keep letters, digits and '_' only.
		metrics.CopyRate + `{organisation="st_mary_s_trust"} 1e+06`,
	})
	assert.Contains(t, body, "\ngo_goroutines ", "and the Go runtime's")
	assert.NotContains(t, body, "_total_total")
	assert.NotContains(t, body, "tally_internal")
	assert.Empty(t, e.list())
}

// TestLabelClashIsReportedNotFatal emits one name with two sets of labels:
// Prometheus refuses the second, and the registry reports it instead of
// bringing the worker down.
func TestLabelClashIsReportedNotFatal(t *testing.T) {
	var e errs
	r := registry.New(e.add)
	defer func() { _ = r.Close() }()
	h := r.Handler()
	h.Counter(metrics.Cutovers).Inc(1)
	h.WithTags(map[string]string{"extra": "x"}).Counter(metrics.Cutovers).Inc(1)
	require.Eventually(t, func() bool { return len(e.list()) > 0 }, 5*registry.ReportEvery, 100*time.Millisecond)
	assert.ErrorContains(t, e.list()[0], metrics.Cutovers)
}

// TestOffWithoutAnAddress: no --metrics-listen, no registry, and a nil
// registry is safe to use.
func TestOffWithoutAnAddress(t *testing.T) {
	r, err := registry.Options{}.Start(nil)
	require.NoError(t, err)
	assert.Nil(t, r)
	assert.Nil(t, r.Handler())
	assert.NoError(t, r.Close())
}

// TestTakenPortFailsAtStart: the address is checked when the worker starts.
func TestTakenPortFailsAtStart(t *testing.T) {
	r := registry.New(nil)
	defer func() { _ = r.Close() }()
	addr, err := r.Serve("127.0.0.1:0")
	require.NoError(t, err)
	_, err = registry.Options{Listen: addr}.Start(nil)
	assert.ErrorContains(t, err, "--metrics-listen "+addr)
}
