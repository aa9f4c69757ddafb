package activities

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"mailwave/contract"
	"mailwave/mail/port"
)

// fakeNotifier remembers what it sent.
type fakeNotifier struct {
	mu   sync.Mutex
	sent map[string]port.Notice // by Message-ID
}

func (f *fakeNotifier) Send(_ context.Context, n port.Notice) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sent == nil {
		f.sent = map[string]port.Notice{}
	}
	_, already := f.sent[n.MessageID]
	f.sent[n.MessageID] = n
	return already, nil
}

func (f *fakeNotifier) Sent(_ context.Context, key string, kind contract.NoticeKind) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.sent[contract.NoticeMessageID(key, kind)]
	return ok, nil
}

// fakeRouter is a routing table.
type fakeRouter struct {
	routes   map[string]port.Route
	cutovers int
}

func (f *fakeRouter) Route(_ context.Context, m contract.MailboxRef) (port.Route, error) {
	if r, ok := f.routes[m.Key]; ok {
		return r, nil
	}
	return port.RouteSource, nil
}

func (f *fakeRouter) Cutover(_ context.Context, m contract.MailboxRef) error {
	if f.routes == nil {
		f.routes = map[string]port.Route{}
	}
	f.routes[m.Key] = port.RouteTarget
	f.cutovers++
	return nil
}

// fakeCopier copies `total` items one per step from the checkpoint, failing
// with failWith after failAfter steps of this call when set.
type fakeCopier struct {
	total     uint32
	failAfter int
	failWith  error
	seen      []contract.Checkpoint
}

func (f *fakeCopier) Copy(ctx context.Context, req port.CopyRequest) (contract.CopyStats, error) {
	f.seen = append(f.seen, req.Checkpoint.Clone())
	cp := req.Checkpoint.Clone()
	var s contract.CopyStats
	for uid := cp.Folders["INBOX"].LastUID + 1; uid <= f.total; uid++ {
		if f.failWith != nil && int(s.Items) == f.failAfter {
			return s, f.failWith
		}
		s.Items++
		s.Bytes += 100
		cp.Folders["INBOX"] = contract.FolderCheckpoint{UIDValidity: 1, LastUID: uid}
		req.Progress(cp, s)
	}
	return s, nil
}

var mbx = contract.MailboxRef{Key: "abc123", Address: "jo@trust.nhs.example"}

func activityEnv() *testsuite.TestActivityEnvironment {
	var ts testsuite.WorkflowTestSuite
	return ts.NewTestActivityEnvironment()
}

func TestCutoverRefusesWithoutTheNotice(t *testing.T) {
	n, r := &fakeNotifier{}, &fakeRouter{}
	env := activityEnv()
	New(n, &fakeCopier{}, r).Register(env)

	_, err := env.ExecuteActivity(contract.ActivityCutover, CutoverInput{Mailbox: mbx})
	var app *temporal.ApplicationError
	require.ErrorAs(t, err, &app)
	assert.Equal(t, contract.ErrTypeNoticeNotSent, app.Type())
	assert.True(t, app.NonRetryable())
	assert.Zero(t, r.cutovers, "nothing was cut over")

	_, err = n.Send(context.Background(), port.Notice{Mailbox: mbx, Kind: contract.NoticeT14, MessageID: contract.NoticeMessageID(mbx.Key, contract.NoticeT14)})
	require.NoError(t, err)
	v, err := env.ExecuteActivity(contract.ActivityCutover, CutoverInput{Mailbox: mbx})
	require.NoError(t, err)
	var res CutoverResult
	require.NoError(t, v.Get(&res))
	assert.False(t, res.AlreadyDone)

	v, err = env.ExecuteActivity(contract.ActivityCutover, CutoverInput{Mailbox: mbx})
	require.NoError(t, err)
	require.NoError(t, v.Get(&res))
	assert.True(t, res.AlreadyDone, "a second cutover finds it done")
	assert.Equal(t, 1, r.cutovers, "and changes nothing")
}

func TestSendNoticeUsesTheDeterministicMessageID(t *testing.T) {
	n := &fakeNotifier{}
	env := activityEnv()
	New(n, &fakeCopier{}, &fakeRouter{}).Register(env)
	for i, wantAlready := range []bool{false, true} {
		v, err := env.ExecuteActivity(contract.ActivitySendNotice, SendNoticeInput{Mailbox: mbx, Kind: contract.NoticeT1, MigrateAt: time.Now()})
		require.NoError(t, err)
		var res SendNoticeResult
		require.NoError(t, v.Get(&res))
		assert.Equal(t, "<t1.abc123@notices.mailwave.invalid>", res.MessageID)
		assert.Equal(t, wantAlready, res.AlreadySent, "send %d", i)
	}
	assert.Len(t, n.sent, 1)

	// Dated (runs since 2026-12-07): one per date, a retry recognised, a
	// new date a new notice.
	at := time.Date(2027, 1, 18, 20, 0, 0, 0, time.UTC)
	for i, c := range []struct {
		at          time.Time
		wantAlready bool
	}{{at, false}, {at, true}, {at.AddDate(0, 0, 7), false}} {
		v, err := env.ExecuteActivity(contract.ActivitySendNotice, SendNoticeInput{Mailbox: mbx, Kind: contract.NoticeT14, MigrateAt: c.at, Dated: true})
		require.NoError(t, err)
		var res SendNoticeResult
		require.NoError(t, v.Get(&res))
		assert.Equal(t, contract.AdvanceNoticeMessageID(mbx.Key, contract.NoticeT14, c.at), res.MessageID)
		assert.Equal(t, c.wantAlready, res.AlreadySent, "dated send %d", i)
	}
}

func TestCopyResumesFromTheHeartbeat(t *testing.T) {
	c := &fakeCopier{total: 10}
	env := activityEnv()
	New(&fakeNotifier{}, c, &fakeRouter{}).Register(env)
	env.SetHeartbeatDetails(CopyProgress{
		Checkpoint: contract.Checkpoint{Folders: map[string]contract.FolderCheckpoint{"INBOX": {UIDValidity: 1, LastUID: 6}}},
		Stats:      contract.CopyStats{Items: 6, Bytes: 600},
		Stalled:    2,
	})
	v, err := env.ExecuteActivity(contract.ActivityCopyMailbox, CopyInput{Mailbox: mbx, Pass: contract.PassBulk})
	require.NoError(t, err)
	var res CopyResult
	require.NoError(t, v.Get(&res))
	assert.True(t, res.Resumed)
	assert.Equal(t, uint32(6), c.seen[0].Folders["INBOX"].LastUID, "the copier got the checkpoint")
	assert.Equal(t, int64(10), res.Stats.Items, "earlier attempts' items are counted once")
}

func TestCopyRetryDelays(t *testing.T) {
	cases := []struct {
		name      string
		failAfter int
		failWith  error
		stalled   int
		wantType  string
		wantDelay time.Duration
		retryable bool
	}{
		{"progress then a transient error resumes soon", 3, errors.New("connection reset"), 4, contract.ErrTypeTransient, CopyResumeDelay, true},
		{"no progress backs off", 0, errors.New("connection reset"), 2, contract.ErrTypeTransient, 8 * time.Second, true},
		{"throttling honours the server", 0, &port.ThrottledError{RetryAfter: 42 * time.Second, Err: errors.New("slow down")}, 0, contract.ErrTypeThrottled, 42 * time.Second, true},
		{"permanent is not retried", 0, port.Permanent(contract.ErrTypeMailboxNotFound, "mailbox abc123 not found"), 0, contract.ErrTypeMailboxNotFound, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := activityEnv()
			New(&fakeNotifier{}, &fakeCopier{total: 10, failAfter: tc.failAfter, failWith: tc.failWith}, &fakeRouter{}).Register(env)
			env.SetHeartbeatDetails(CopyProgress{Stalled: tc.stalled})
			_, err := env.ExecuteActivity(contract.ActivityCopyMailbox, CopyInput{Mailbox: mbx, Pass: contract.PassBulk})
			var app *temporal.ApplicationError
			require.ErrorAs(t, err, &app)
			assert.Equal(t, tc.wantType, app.Type())
			assert.Equal(t, tc.wantDelay, app.NextRetryDelay())
			assert.Equal(t, tc.retryable, !app.NonRetryable())
		})
	}
	assert.Equal(t, CopyMaxRetryDelay, CopyRetryDelay(30), "the back-off is capped")
}
