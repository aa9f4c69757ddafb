package graph_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"mailwave/contract"
	"mailwave/mail/graph"
	"mailwave/mail/port"
	"mailwave/testkit/fakegraph"
)

const (
	tenant   = "contoso-nhs"
	clientID = "11111111-2222-3333-4444-555555555555"
	secret   = "s3cret-value"
	upn      = "alice@trust.nhs.example"
)

var alice = contract.MailboxRef{Key: "k-alice", Address: upn}

// setup is a fake Graph and a client of it with the application's secret.
func setup(t *testing.T, o fakegraph.Options, limits graph.Limits) (*fakegraph.Server, *graph.Client, *graph.TokenSource) {
	t.Helper()
	o.Tenant, o.ClientID, o.Secret, o.Mailboxes = tenant, clientID, secret, []string{upn}
	srv := fakegraph.Start(o)
	t.Cleanup(srv.Close)
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, srv.Client())
	src, err := graph.NewTokens(ctx).Source(graph.App{Tenant: tenant, ClientID: clientID, Secret: secret, LoginURL: srv.LoginURL()}, graph.ScopeGraph)
	require.NoError(t, err)
	budgets, err := graph.NewBudgets(limits)
	require.NoError(t, err)
	return srv, graph.NewClient(srv.Client(), srv.GraphURL(), src, budgets), src
}

func item(n int) graph.Item {
	return graph.Item{
		Source: "v7." + string(rune('a'+n%26)) + time.Duration(n).String(),
		JSON:   map[string]any{"subject": "report", "body": map[string]string{"contentType": "text", "content": "x"}},
		Read:   n%2 == 0, Sent: time.Date(2019, 5, 5, 5, 5, 5, 0, time.UTC), Received: time.Date(2019, 5, 5, 5, 6, 0, 0, time.UTC),
	}
}

// TestFoldersAndMessagesExactlyOnce: folders are found or made by path
// (well-known ones by their name), a message is created non-draft with its
// dates, read state and source identity, and creating it again finds it.
func TestFoldersAndMessagesExactlyOnce(t *testing.T) {
	srv, c, _ := setup(t, fakegraph.Options{}, graph.DefaultLimits)
	ctx := context.Background()
	m := c.Mailbox(alice)

	inbox, err := m.Folder(ctx, "inbox", nil)
	require.NoError(t, err)
	deep, err := m.Folder(ctx, "", []string{"Projects", "2019's"})
	require.NoError(t, err)
	again, err := m.Folder(ctx, "", []string{"Projects", "2019's"})
	require.NoError(t, err)
	assert.Equal(t, deep, again, "found the second time, not made twice")

	id, created, err := m.CreateOnce(ctx, deep, item(1))
	require.NoError(t, err)
	assert.True(t, created)
	id2, created, err := m.CreateOnce(ctx, deep, item(1))
	require.NoError(t, err)
	assert.False(t, created, "the retry finds it")
	assert.Equal(t, id, id2)

	var folder *fakegraph.Folder
	for _, f := range srv.Folders(upn) {
		if f.ID == deep {
			folder = f
		}
		if f.ID == inbox {
			assert.Equal(t, "inbox", f.WellKnown)
		}
	}
	require.NotNil(t, folder)
	require.Len(t, folder.Messages, 1)
	msg := folder.Messages[0]
	assert.False(t, msg.IsDraft, "created with its flags: not a draft")
	assert.Equal(t, "2019-05-05T05:05:05Z", msg.Props["systemtime 0x0039"])
	assert.Equal(t, "2019-05-05T05:06:00Z", msg.Props["systemtime 0x0e06"])
	assert.Equal(t, item(1).Source, msg.Props[stringsLower(graph.SourceProperty)])

	require.NoError(t, m.Delete(ctx, id))
	ids, err := m.Find(ctx, deep, item(1).Source)
	require.NoError(t, err)
	assert.Empty(t, ids)
}

func stringsLower(s string) string {
	out := []rune(s)
	for i, r := range out {
		if r >= 'A' && r <= 'Z' {
			out[i] = r + 'a' - 'A'
		}
	}
	return string(out)
}

// TestTokensRenewThemselves: tokens that live two seconds, over six seconds
// of calls: every call goes through, on tokens renewed before they end,
// one token shared by every caller.
func TestTokensRenewThemselves(t *testing.T) {
	srv, c, src := setup(t, fakegraph.Options{TokenTTL: 2 * time.Second}, graph.DefaultLimits)
	ctx := context.Background()
	m := c.Mailbox(alice)
	folder, err := m.Folder(ctx, "inbox", nil)
	require.NoError(t, err)
	deadline := time.Now().Add(6 * time.Second)
	n := 0
	for time.Now().Before(deadline) {
		var wg sync.WaitGroup
		for range 3 {
			n++
			it := item(n)
			wg.Go(func() {
				_, err := m.Create(ctx, folder, it)
				assert.NoError(t, err)
			})
		}
		wg.Wait()
		time.Sleep(100 * time.Millisecond)
	}
	assert.GreaterOrEqual(t, srv.Stats().TokensIssued, 3, "renewed as they neared their end")
	assert.Less(t, srv.Stats().TokensIssued, n/2, "one token shared by the callers, not one each")
	assert.Equal(t, srv.Stats().TokensIssued, src.Fetched)
}

// TestARevokedSecretFailsTheMailbox: once the secret is revoked, the next
// token is refused: a permanent BadCredentials error naming the tenant and
// the mailbox's key, never its address.
func TestARevokedSecretFailsTheMailbox(t *testing.T) {
	srv, c, _ := setup(t, fakegraph.Options{}, graph.DefaultLimits)
	ctx := context.Background()
	m := c.Mailbox(alice)
	_, err := m.Folder(ctx, "inbox", nil)
	require.NoError(t, err)
	srv.RevokeSecret()
	_, err = m.Folder(ctx, "inbox", nil)
	typ, permanent := port.IsPermanent(err)
	require.True(t, permanent, "%v", err)
	assert.Equal(t, contract.ErrTypeBadCredentials, typ)
	assert.Contains(t, err.Error(), "AADSTS7000215")
	assert.NotContains(t, err.Error(), "@")
	var refused *graph.RefusedError
	require.ErrorAs(t, err, &refused)
	assert.True(t, refused.Has(7000215), "the AADSTS code, for callers to go by")
	assert.Equal(t, "invalid_client", refused.Code)
	var re *oauth2.RetrieveError
	assert.ErrorAs(t, err, &re, "the token endpoint's answer under it")
}

// TestRefusalsAreWaitedOutExactly: three 503s with Retry-After 1 s: the
// call goes through after them, no request came before its Retry-After,
// and it took the three seconds asked.
func TestRefusalsAreWaitedOutExactly(t *testing.T) {
	srv, c, _ := setup(t, fakegraph.Options{}, graph.DefaultLimits)
	ctx := context.Background()
	m := c.Mailbox(alice)
	var refusals []time.Time
	c.OnRefused = func(sentAt time.Time) { refusals = append(refusals, sentAt) }
	srv.Fail503(3, time.Second)
	start := time.Now()
	_, err := m.Folder(ctx, "inbox", nil)
	require.NoError(t, err)
	require.Len(t, refusals, 3, "the adaptive rate hears of each refusal")
	assert.False(t, refusals[0].Before(start), "with when the refused request was sent")
	assert.GreaterOrEqual(t, time.Since(start), 3*time.Second)
	st := srv.Stats()
	assert.Equal(t, 3, st.Refused["ServiceUnavailable"])
	assert.Zero(t, st.Early, "no request before its Retry-After")

	// Past the client's rounds, a ThrottledError with the delay asked.
	c.MaxRounds = 2
	srv.Fail503(5, 2*time.Second)
	_, err = m.Folder(ctx, "inbox", nil)
	var thr *port.ThrottledError
	require.ErrorAs(t, err, &thr)
	assert.Equal(t, 2*time.Second, thr.RetryAfter)
}

// TestBudgetsKeepASteadyCopyUnrefused: limits scaled down a hundredfold
// (4 at once, 100 requests per 3 s, 60 KB per 3 s), eight callers creating
// messages of about 4 KB as fast as they can for 7 s: the service never
// refuses one, and the client sends what the budgets allow.
func TestBudgetsKeepASteadyCopyUnrefused(t *testing.T) {
	fl := fakegraph.Limits{Concurrent: 4, Requests: 100, RequestWindow: 3 * time.Second,
		UploadBytes: 60_000, UploadWindow: 3 * time.Second, MaxBody: 4 << 20}
	cl := graph.Limits{Concurrent: 4, Requests: 100, RequestWindow: 3 * time.Second,
		UploadBytes: 60_000, UploadWindow: 3 * time.Second, Margin: 100 * time.Millisecond}
	srv, c, _ := setup(t, fakegraph.Options{Limits: fl}, cl)
	ctx := context.Background()
	m := c.Mailbox(alice)
	folder, err := m.Folder(ctx, "inbox", nil)
	require.NoError(t, err)
	body := make([]byte, 3000)
	_, _ = rand.Read(body)
	stop := time.Now().Add(7 * time.Second)
	var mu sync.Mutex
	var sent int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; time.Now().Before(stop); i++ {
				it := item(g*1000 + i)
				it.JSON = map[string]any{"subject": "x", "body": map[string]any{"contentType": "text", "content": body}}
				_, err := m.Create(ctx, folder, it)
				if !assert.NoError(t, err) {
					return
				}
				mu.Lock()
				sent += 4000
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	st := srv.Stats()
	assert.Zero(t, st.Refused["ApplicationThrottled"], "never refused: %v", st.Refused)
	// 60 KB per 3 s over 7 s: at most three windows' worth (180 KB) and,
	// running flat out, more than two (120 KB).
	assert.LessOrEqual(t, sent, int64(200_000))
	assert.Greater(t, sent, int64(100_000), "the budget is used, not left idle")
}

// TestACertificateSignsItsOwnAssertion: an application registered with a
// certificate gets tokens for an assertion its key signs, and another key
// is refused.
func TestACertificateSignsItsOwnAssertion(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mailwave"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	srv := fakegraph.Start(fakegraph.Options{Tenant: tenant, ClientID: clientID, Cert: cert, Mailboxes: []string{upn}})
	t.Cleanup(srv.Close)
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, srv.Client())

	src, err := graph.NewTokens(ctx).Source(graph.App{Tenant: tenant, ClientID: clientID, Cert: cert, Key: key, LoginURL: srv.LoginURL()}, graph.ScopeGraph)
	require.NoError(t, err)
	_, err = src.Token(context.Background())
	require.NoError(t, err)

	other, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	src, err = graph.NewTokens(ctx).Source(graph.App{Tenant: tenant, ClientID: clientID, Cert: cert, Key: other, LoginURL: srv.LoginURL()}, graph.ScopeGraph)
	require.NoError(t, err)
	_, err = src.Token(context.Background())
	typ, permanent := port.IsPermanent(err)
	require.True(t, permanent, "%v", err)
	assert.Equal(t, contract.ErrTypeBadCredentials, typ)
}
