package activities

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"mailwave/contract"
	"mailwave/contract/metrics"
	"mailwave/mail/port"
)

// recorder is a metrics handler that remembers every figure, by name and
// labels ("name{k=v,...}").
type recorder struct {
	tags map[string]string
	st   *recorded
}

type recorded struct {
	mu       sync.Mutex
	counters map[string]int64
	gauges   map[string][]float64 // every update, in order
	timers   map[string][]time.Duration
}

func newRecorder() *recorder {
	return &recorder{st: &recorded{counters: map[string]int64{}, gauges: map[string][]float64{}, timers: map[string][]time.Duration{}}}
}

func (r *recorder) WithTags(tags map[string]string) client.MetricsHandler {
	merged := maps.Clone(r.tags)
	if merged == nil {
		merged = map[string]string{}
	}
	maps.Copy(merged, tags)
	return &recorder{tags: merged, st: r.st}
}

func (r *recorder) key(name string) string {
	var kv []string
	for _, k := range slices.Sorted(maps.Keys(r.tags)) {
		kv = append(kv, k+"="+r.tags[k])
	}
	return fmt.Sprintf("%s{%s}", name, strings.Join(kv, ","))
}

type recCounter func(int64)

func (f recCounter) Inc(n int64) { f(n) }

type recGauge func(float64)

func (f recGauge) Update(v float64) { f(v) }

type recTimer func(time.Duration)

func (f recTimer) Record(d time.Duration) { f(d) }

func (r *recorder) Counter(name string) client.MetricsCounter {
	k := r.key(name)
	return recCounter(func(n int64) { r.st.mu.Lock(); r.st.counters[k] += n; r.st.mu.Unlock() })
}

func (r *recorder) Gauge(name string) client.MetricsGauge {
	k := r.key(name)
	return recGauge(func(v float64) { r.st.mu.Lock(); r.st.gauges[k] = append(r.st.gauges[k], v); r.st.mu.Unlock() })
}

func (r *recorder) Timer(name string) client.MetricsTimer {
	k := r.key(name)
	return recTimer(func(d time.Duration) { r.st.mu.Lock(); r.st.timers[k] = append(r.st.timers[k], d); r.st.mu.Unlock() })
}

// TestCopyCountsEachByteOnce fails a copy with a throttle reply after three
// of ten items, resumes it from its heartbeat, and checks the counters saw
// each item once, the throttle reply and its delay, and the copy in flight
// come and go.
func TestCopyCountsEachByteOnce(t *testing.T) {
	rec := newRecorder()
	throttle := &port.ThrottledError{RetryAfter: 42 * time.Second, Err: errors.New("slow down")}
	c := &fakeCopier{total: 10, failAfter: 3, failWith: throttle}
	env := activityEnv()
	New(&fakeNotifier{}, c, &fakeRouter{}).WithMetrics(rec).Register(env)
	_, err := env.ExecuteActivity(contract.ActivityCopyMailbox, CopyInput{Mailbox: mbx, Pass: contract.PassBulk})
	require.Error(t, err)

	// The retry: the SDK hands it the first attempt's last heartbeat.
	c.failWith = nil
	env.SetHeartbeatDetails(CopyProgress{
		Checkpoint: contract.Checkpoint{Folders: map[string]contract.FolderCheckpoint{"INBOX": {UIDValidity: 1, LastUID: 3}}},
		Stats:      contract.CopyStats{Items: 3, Bytes: 300},
	})
	v, err := env.ExecuteActivity(contract.ActivityCopyMailbox, CopyInput{Mailbox: mbx, Pass: contract.PassBulk})
	require.NoError(t, err)
	var res CopyResult
	require.NoError(t, v.Get(&res))

	assert.Equal(t, map[string]int64{
		metrics.CopiedBytes + "{pass=bulk}":          1000,
		metrics.CopiedItems + "{pass=bulk}":          10,
		metrics.Throttled + "{activity=CopyMailbox}": 1,
	}, rec.st.counters)
	assert.Equal(t, res.Stats.Bytes, rec.st.counters[metrics.CopiedBytes+"{pass=bulk}"], "the counter agrees with the result")
	assert.Equal(t, []time.Duration{42 * time.Second}, rec.st.timers[metrics.ThrottleRetryAfter+"{activity=CopyMailbox}"])
	assert.Equal(t, []float64{1, 0, 1, 0}, rec.st.gauges[metrics.CopiesInFlight+"{}"], "in flight during each attempt")
}

// TestNoticesAndCutoversAreCountedOnce sends a notice twice and cuts over
// twice: a repeat the notifier recognises and a cutover found done count
// nothing.
func TestNoticesAndCutoversAreCountedOnce(t *testing.T) {
	rec := newRecorder()
	n, r := &fakeNotifier{}, &fakeRouter{}
	env := activityEnv()
	New(n, &fakeCopier{}, r).WithMetrics(rec).Register(env)
	for range 2 {
		_, err := env.ExecuteActivity(contract.ActivitySendNotice, SendNoticeInput{Mailbox: mbx, Kind: contract.NoticeT14, MigrateAt: time.Now()})
		require.NoError(t, err)
		_, err = env.ExecuteActivity(contract.ActivityCutover, CutoverInput{Mailbox: mbx})
		require.NoError(t, err)
	}
	assert.Equal(t, map[string]int64{
		metrics.NoticesSent + "{kind=t14}": 1,
		metrics.Cutovers + "{}":            1,
	}, rec.st.counters)
}

// TestThrottledNotifierIsCounted counts a throttle reply from a port other
// than the copier's.
func TestThrottledNotifierIsCounted(t *testing.T) {
	rec := newRecorder()
	env := activityEnv()
	New(throttledNotifier{}, &fakeCopier{}, &fakeRouter{}).WithMetrics(rec).Register(env)
	_, err := env.ExecuteActivity(contract.ActivitySendNotice, SendNoticeInput{Mailbox: mbx, Kind: contract.NoticeT1})
	require.Error(t, err)
	assert.Equal(t, map[string]int64{metrics.Throttled + "{activity=SendNotice}": 1}, rec.st.counters)
	assert.Equal(t, []time.Duration{time.Minute}, rec.st.timers[metrics.ThrottleRetryAfter+"{activity=SendNotice}"])
}

type throttledNotifier struct{}

func (throttledNotifier) Send(context.Context, port.Notice) (bool, error) {
	return false, &port.ThrottledError{RetryAfter: time.Minute, Err: errors.New("421 too many messages")}
}

func (throttledNotifier) Sent(context.Context, string, contract.NoticeKind) (bool, error) {
	return false, nil
}
