package imapcopy_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/mail/adapt"
	"mailwave/mail/imapcopy"
	"mailwave/mail/port"
	"mailwave/testkit/dovecot"
	"mailwave/testkit/imaptest"
	"mailwave/testkit/throttleproxy"
)

// startBulkPair starts a pair whose source stores maildirs, and puts n
// generated messages of about total bytes in three of its folders.
func startBulkPair(t *testing.T, n int, total int64) (pair, int64) {
	t.Helper()
	p := startPairWith(t, func(o *dovecot.Options) { o.Storage = dovecot.Maildir }, nil)
	folders := []string{"INBOX", "Archive", "Sent"}
	_, size, err := imaptest.SeedMaildir(p.src, user, imaptest.BulkFolders(folders), imaptest.GenerateBulk(7, n, total, folders))
	require.NoError(t, err)
	return p, size
}

// behindProxy is the pair's copier with the target behind a throttling
// proxy, and its adaptive rate.
func (p pair) behindProxy(t *testing.T, o throttleproxy.Options, mod func(*imapcopy.Options)) (*imapcopy.Copier, *throttleproxy.Proxy, *adapt.Rate) {
	t.Helper()
	px, err := throttleproxy.Start(p.tgt.Addr(), o)
	require.NoError(t, err)
	t.Cleanup(func() { px.Close() })
	r := adapt.New(adapt.Options{Name: "test"})
	c := p.copier(t, func(co *imapcopy.Options) {
		co.Target = imapcopy.Endpoint{Host: px.Host(), Port: px.Port(), Security: imapcopy.SecurityNone}
		co.Window, co.Rate = 16, r
		if mod != nil {
			mod(co)
		}
	})
	return c, px, r
}

// copyToEnd runs a bulk pass until it ends, each attempt from the last
// checkpoint the one before reported, as the activity's retries do; only
// throttling and lost connections may end an attempt.
func copyToEnd(t *testing.T, c *imapcopy.Copier) (attempts int) {
	t.Helper()
	var cp contract.Checkpoint
	for attempts = 1; ; attempts++ {
		require.LessOrEqual(t, attempts, 50, "the copy never ended")
		_, err := c.Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk, Checkpoint: cp,
			Progress: func(c contract.Checkpoint, _ contract.CopyStats) { cp = c }})
		if err == nil {
			return attempts
		}
		_, permanent := port.IsPermanent(err)
		require.False(t, permanent, "%v", err)
		var thr *port.ThrottledError
		if errors.As(err, &thr) {
			time.Sleep(min(thr.RetryAfter, 2*time.Second))
		}
		t.Logf("attempt %d: %v", attempts, err)
	}
}

// TestCopyFindsTheTargetsLimit copies through a target limited to far less
// than the copier can do, with no figure configured: the copy is an exact
// match with nothing twice, the target refused seldom, and once the rate
// has found the limit the target takes close to all it allows.
func TestCopyFindsTheTargetsLimit(t *testing.T) {
	p, size := startBulkPair(t, 840, 14<<20)
	// A quarter of what the copy does under -race on a loaded 2-core
	// machine (about 9 MiB/s unthrottled), so a slow CI machine still
	// meets it; half the rate an unconfigured copy starts at.
	const limit = 2 << 20
	c, px, r := p.behindProxy(t, throttleproxy.Options{Limit: limit}, nil)

	// The target's figures every half second, while the copy runs.
	var mu sync.Mutex
	var samples []throttleproxy.Stats
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			mu.Lock()
			samples = append(samples, px.Stats())
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	start := time.Now()
	attempts := copyToEnd(t, c)
	el := time.Since(start)
	close(stop)
	<-sampled

	requireSame(t, p)
	st := px.Stats()
	assert.Equal(t, size, st.BytesAccepted, "every message passed the target once")
	// From 2 s in (the rate has met the limit) to the last full sample.
	var from, to throttleproxy.Stats
	for _, s := range samples {
		if from.At.IsZero() && s.At.Sub(start) >= 2*time.Second {
			from = s
		}
		if s.BytesAccepted < size {
			to = s
		}
	}
	settled := to.RateSince(from) / limit
	share := float64(st.AppendsRefused) / float64(st.AppendsRefused+st.AppendsAccepted)
	t.Logf("%d MB in %s over %d attempt(s); settled at %.2f of the limit (%s to %s); %d of %d APPENDs refused (%.3f); %d dropped; rate %+v",
		size>>20, el.Round(time.Millisecond), attempts, settled, from.At.Sub(start).Round(time.Millisecond), to.At.Sub(start).Round(time.Millisecond),
		st.AppendsRefused, st.AppendsRefused+st.AppendsAccepted, share, st.Dropped, r.Snapshot())
	assert.Positive(t, st.AppendsRefused, "the limit was met")
	assert.Greater(t, settled, 0.8, "the rate settles near the limit")
	assert.LessOrEqual(t, settled, 1.1)
	assert.Less(t, share, 0.25, "refused seldom (a fixed rate of twice the limit has half refused)")
}

// TestCopyUnderDropsAndRefusalsWithoutFigures has a target that names no
// back-off and drops a connection at its first refusal: every attempt that
// meets it loses its connections; the copy still ends an exact match with
// nothing twice, on every path of appending (go-imap's APPEND waits out
// the throttling in the lane's own goroutine).
func TestCopyUnderDropsAndRefusalsWithoutFigures(t *testing.T) {
	for name, mod := range map[string]func(*imapcopy.Options){
		"multiappend": nil,
		"pipelined":   func(o *imapcopy.Options) { o.NoMultiAppend = true },
		"append":      func(o *imapcopy.Options) { o.NoPipeline = true },
	} {
		t.Run(name, func(t *testing.T) {
			// A ninth of what the copy does under -race on a loaded
			// machine, so a slow CI machine still overdraws it at once.
			p, size := startBulkPair(t, 200, 3<<20)
			c, px, r := p.behindProxy(t, throttleproxy.Options{Limit: 1 << 20, MaxRefusals: 1, NoBackoff: true}, mod)
			attempts := copyToEnd(t, c)
			requireSame(t, p)
			st := px.Stats()
			t.Logf("%d attempts; %d APPENDs refused, %d dropped; rate %+v", attempts, st.AppendsRefused, st.Dropped, r.Snapshot())
			assert.Positive(t, st.Dropped, "connections were dropped")
			assert.Positive(t, r.Snapshot().Cuts, "refusals without a figure still slow the copy")
			assert.GreaterOrEqual(t, st.BytesAccepted, size)
		})
	}
}

// TestBatchesFollowTheRate: through a rate, a batch holds what the rate
// sends in about a Cadence (adapt.Rate.Batch) rather than a window of
// messages, so a worker sending more sends bigger batches at the same pace,
// and a target short of its allowance refuses its batches first.
func TestBatchesFollowTheRate(t *testing.T) {
	meanAppend := func(rate float64) float64 {
		p, size := startBulkPair(t, 600, 12<<20)
		px, err := throttleproxy.Start(p.tgt.Addr(), throttleproxy.Options{})
		require.NoError(t, err)
		t.Cleanup(func() { px.Close() })
		c := p.copier(t, func(co *imapcopy.Options) {
			co.Target = imapcopy.Endpoint{Host: px.Host(), Port: px.Port(), Security: imapcopy.SecurityNone}
			co.Window = 256
			// A fortieth of a second: enough batches in each folder for the
			// mean not to rest on a few random sizes.
			co.Rate = adapt.New(adapt.Options{Name: "test", Start: rate, Ceiling: rate, Fixed: true, Cadence: 25 * time.Millisecond})
		})
		copyToEnd(t, c)
		requireSame(t, p)
		st := px.Stats()
		require.Equal(t, size, st.BytesAccepted)
		return float64(st.BytesAccepted) / float64(st.AppendsAccepted)
	}
	slow, fast := meanAppend(6<<20), meanAppend(24<<20)
	t.Logf("mean APPEND %.0f KiB at 6 MiB/s, %.0f KiB at 24 MiB/s", slow/1024, fast/1024)
	assert.InDelta(t, 0.15*(1<<20), slow, 0.06*(1<<20), "a fortieth of a second of 6 MiB/s, give or take a message and the last batch of each folder")
	assert.Greater(t, fast/slow, 2.5, "four times the rate, about four times the batch")
}
