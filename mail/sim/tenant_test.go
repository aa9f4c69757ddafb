package sim

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/mail/port"
)

// TestWorkersShareTheTenantLimit opens one estate twice, as two worker
// processes would (each its own descriptor on the bucket file, so the
// flock keeps them apart), and copies mailboxes through both at once under
// a tenant limit neither knows: the target refuses batches over it, each
// worker's rate finds it, nothing is copied twice or lost, and the bytes
// the target took stay within the limit.
//
// The limit is a fifth of what the simulation copies on this machine under
// the race detector with nothing else running, so the workers meet it even
// when the rest of the suite shares the CPU (at 2 GiB/s, CI's loaded
// machine once copied at 0.76 of it and one worker was never refused), and
// the workers take mailboxes from one queue, as from a task queue, so both
// are busy until it is empty (given half the mailboxes each, one finished
// early on the bucket's first second).
func TestWorkersShareTheTenantLimit(t *testing.T) {
	dir := t.TempDir()
	_, err := Generate(dir, GenerateOptions{Seed: testSeed, Mailboxes: 6})
	require.NoError(t, err)
	const scale = 1000
	const tenant = 512 << 10 // simulated bytes per second: 512 MiB per real second
	o := Options{TimeScale: scale, BytesPerSecond: 1 << 30, TenantBytesPerSecond: tenant, BatchBytes: 8 << 20}
	var workers [2]*Estate
	for i := range workers {
		workers[i], err = Open(dir, o)
		require.NoError(t, err)
		require.NotNil(t, workers[i].Rate())
	}
	e := workers[0]
	var refs []contract.MailboxRef
	for i := range e.manifest.Mailboxes {
		refs = append(refs, ref(e, i))
	}

	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var copied int64
	queue := make(chan contract.MailboxRef, len(refs))
	for _, m := range refs {
		queue <- m
	}
	close(queue)
	for i := range 2 * len(workers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range queue {
				st, errs := copyRetrying(t, workers[i%len(workers)], m, contract.PassBulk)
				for _, err := range errs {
					var thr *port.ThrottledError
					assert.ErrorAs(t, err, &thr, "only throttling ends an attempt")
				}
				mu.Lock()
				copied += st.Bytes
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)

	stats, err := ReadTenantStats(dir)
	require.NoError(t, err)
	limit := float64(tenant * scale)
	t.Logf("%.1f GB in %s: %.2f of the limit; %d batches taken, %d refused; rates %+v, %+v",
		float64(copied)/1e9, el.Round(time.Millisecond), float64(copied)/el.Seconds()/limit,
		stats.Accepted, stats.Refused, workers[0].Rate().Snapshot(), workers[1].Rate().Snapshot())
	assert.Equal(t, copied, stats.AcceptedBytes, "the target took what was copied, once")
	assert.Positive(t, stats.Refused, "the limit was met")
	assert.LessOrEqual(t, float64(stats.AcceptedBytes), limit*el.Seconds()+limit, "never more than the limit and its bucket")
	for _, w := range workers {
		assert.Positive(t, w.Rate().Snapshot().Cuts, "each worker's rate was cut")
	}
	r, err := e.Verify(context.Background(), nil)
	require.NoError(t, err)
	assert.Zero(t, r.Totals.Duplicated, r.Summary())
	for _, row := range r.Rows {
		assert.Equal(t, row.SourceItems-row.Missing, row.TargetItems, "mailbox %s", row.Key)
	}

	// The limit can change while workers run.
	require.NoError(t, SetTenantLimit(dir, 1))
	stats, err = ReadTenantStats(dir)
	require.NoError(t, err)
	assert.Equal(t, 1.0, stats.Limit)
}
