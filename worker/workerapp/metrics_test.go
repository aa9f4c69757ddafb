package workerapp

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"mailwave/contract/metrics"
)

// gauges is a metrics handler that keeps each gauge's last value, by its
// organisation label.
type gauges struct {
	org string
	st  *gaugeValues
}

type gaugeValues struct {
	mu   sync.Mutex
	last map[string]float64 // "name/organisation"
}

func (g gauges) WithTags(tags map[string]string) client.MetricsHandler {
	return gauges{org: tags[metrics.TagOrganisation], st: g.st}
}
func (g gauges) Counter(name string) client.MetricsCounter {
	return counterFunc(func(d int64) {
		g.st.mu.Lock()
		defer g.st.mu.Unlock()
		g.st.last[name+"/"+g.org] += float64(d)
	})
}
func (g gauges) Timer(string) client.MetricsTimer { return client.MetricsNopHandler.Timer("") }
func (g gauges) Gauge(name string) client.MetricsGauge {
	return gaugeFunc(func(v float64) {
		g.st.mu.Lock()
		defer g.st.mu.Unlock()
		g.st.last[name+"/"+g.org] = v
	})
}

func (g gauges) value(key string) (float64, bool) {
	g.st.mu.Lock()
	defer g.st.mu.Unlock()
	v, ok := g.st.last[key]
	return v, ok
}

type gaugeFunc func(float64)

func (f gaugeFunc) Update(v float64) { f(v) }

type counterFunc func(int64)

func (f counterFunc) Inc(d int64) { f(d) }

// Each IMAP organisation's adaptive copy rate is sampled onto a gauge
// labelled with the organisation's configured name, at once and then
// every interval.
func TestCopyRatesAreSampledPerOrganisation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mailwave.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`organisations:
  - name: trust-a
    domains: [a.example]
    source: {host: imap.a.example, auth: {password_secret: pw}}
    target: {host: imap.target.example, auth: {password_secret: pw}}
    copy: {bytes_per_second: 1000000}
    notifier: {kind: outbox, from: migration@a.example, outbox: {dir: `+filepath.Join(dir, "outbox")+`}}
    router: {kind: transport_map, transport_map: {path: `+filepath.Join(dir, "transport")+`, next_hop: "smtp:[x]"}}
  - name: trust-b
    domains: [b.example]
    source: {host: imap.b.example, auth: {password_secret: pw}}
    target: {host: imap.target.example, auth: {password_secret: pw}}
    notifier: {kind: outbox, from: migration@b.example, outbox: {dir: `+filepath.Join(dir, "outbox")+`}}
    router: {kind: transport_map, transport_map: {path: `+filepath.Join(dir, "transport")+`, next_hop: "smtp:[x]"}}
`), 0o600))
	t.Setenv("MAILWAVE_SECRET_PW", "not-a-real-password")
	o, err := Config{ConfigFile: path}.ports()
	require.NoError(t, err)
	rates := o.rates()
	require.Len(t, rates, 2)
	assert.Equal(t, "trust-a", rates[0].org)
	assert.Equal(t, "trust-b", rates[1].org)

	h := gauges{st: &gaugeValues{last: map[string]float64{}}}
	stop := sampleRates(context.Background(), h, rates, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		_, a := h.value(metrics.CopyRate + "/trust-a")
		_, b := h.value(metrics.CopyRate + "/trust-b")
		return a && b
	}, 5*time.Second, 10*time.Millisecond)
	stop()
	v, _ := h.value(metrics.CopyRate + "/trust-a")
	assert.Equal(t, 1e6, v, "trust-a starts at its ceiling, under the default start")

	// The refusals a rate took in are counted once each, however often
	// it is sampled.
	rates[1].rate.Throttled()
	rates[1].rate.Throttled()
	stop = sampleRates(context.Background(), h, rates, 10*time.Millisecond)
	require.Eventually(t, func() bool { v, _ := h.value(metrics.CopyRefusals + "/trust-b"); return v == 2 }, 5*time.Second, 10*time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	stop()
	v, _ = h.value(metrics.CopyRefusals + "/trust-b")
	assert.Equal(t, 2.0, v)

	assert.NotPanics(t, func() { sampleRates(context.Background(), nil, rates, time.Millisecond)() }, "no handler: nothing sampled")
}
