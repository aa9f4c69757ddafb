package e2e_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/client"

	"mailwave/codec"
	"mailwave/codec/codecserver"
	"mailwave/contract"
	"mailwave/identity"
	"mailwave/internal/accesstoken"
	"mailwave/testkit"
	"mailwave/worker/config"
	"mailwave/worker/workerapp"
)

// TestUIDecodesThroughTheCodecServer drives the Temporal UI in a real
// browser (Debian's Chromium): a mailbox's input, stored encrypted, shows
// as ciphertext until the browser signs in to the codec server with a
// person's decoder token, and then decoded, address and name. Each decode
// is recorded in the audit file in that person's name with the workflow's
// ID, and no payload text. When the session expires, or the person is
// revoked, the same page shows ciphertext again.
func TestUIDecodesThroughTheCodecServer(t *testing.T) {
	u := startUI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	ref := contract.MailboxRef{Key: "ui-1", Address: "zoe.quinn@trust-a.nhs.example", DisplayName: "Zoe Quinn"}
	run, err := u.srv.Client().ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.MailboxWorkflowID(ref.Key), TaskQueue: "no-worker-polls-this"},
		contract.MailboxWorkflowName, contract.MailboxInput{Mailbox: ref, MigrateAt: time.Now().Add(30 * 24 * time.Hour)})
	require.NoError(t, err)

	page := fmt.Sprintf("%s/namespaces/default/workflows/%s/%s/history", u.origin, run.GetID(), run.GetRunID())
	// Not signed in: the history renders, its input undecoded.
	u.assertUndecoded(page, ref)

	// Sign in at the codec server, then the same page shows the input.
	u.signIn(u.token("dana"))
	u.assertDecoded(page, ref)
	decodes := 0
	for _, r := range u.records() {
		if r.Event == "decode" && slices.Contains(r.Workflows, run.GetID()) {
			decodes++
			assert.Equal(t, "dana", r.Subject)
			assert.Equal(t, "session", r.Via)
			assert.Equal(t, "default", r.Namespace)
			assert.Equal(t, "ok", r.Outcome)
			assert.Positive(t, r.Payloads)
		}
	}
	assert.Positive(t, decodes, "the UI's decodes of the workflow are recorded, naming it")
	for _, r := range u.records() {
		b, _ := json.Marshal(r)
		t.Logf("audit: %s", b)
	}
	u.noPlaintextInAudit(ref)
	// The browser does not say which workflow it decodes for: the request
	// is cross-origin, so its Referer is the UI's origin, not the page.
	u.mu.Lock()
	referers := slices.Clone(u.referers)
	u.mu.Unlock()
	require.NotEmpty(t, referers)
	for _, rf := range referers {
		assert.NotContains(t, rf, run.GetID())
		assert.Contains(t, []string{"", u.origin + "/"}, rf)
	}
	t.Logf("Referer of the UI's decode requests: %q", referers)

	// The session expires (the codec server's clock moves past its
	// maximum): the page shows ciphertext again.
	u.clock.Add(codecserver.DefaultMaxSession)
	u.assertUndecoded(page, ref)

	// Signed in again, then revoked: the next request is refused.
	u.signIn(u.token("dana"))
	u.assertDecoded(page, ref)
	require.NoError(t, accesstoken.Revoke(u.revocations, "dana", u.clock.Now()))
	time.Sleep(1100 * time.Millisecond) // the verifier looks at the list at most once a second
	u.assertUndecoded(page, ref)
	var refusals []string
	for _, r := range u.records() {
		if r.Event == "refused" {
			refusals = append(refusals, r.Subject+": "+r.Reason)
		}
	}
	assert.Contains(t, refusals, "dana: decode: session expired")
	assert.Contains(t, refusals, "dana: decode: token revoked")
	u.noPlaintextInAudit(ref)
}

// assertUndecoded loads page and checks the workflow's input is on it
// sealed: its encoding, binary/encrypted, in base64 as the UI shows
// undecoded metadata, and neither address nor name.
func (u *ui) assertUndecoded(page string, ref contract.MailboxRef) {
	u.t.Helper()
	require.NoError(u.t, chromedp.Do(u.bctx, chromedp.Navigate(page)))
	require.Eventually(u.t, func() bool { return strings.Contains(u.bodyText(), "MailboxMigration") }, time.Minute, 500*time.Millisecond,
		"the UI did not show the workflow")
	expandInput(u.t, u.bctx)
	time.Sleep(3 * time.Second) // time for a decode attempt to have happened
	text := u.bodyText()
	assert.Contains(u.t, text, "YmluYXJ5L2VuY3J5cHRlZA==")
	assert.NotContains(u.t, text, ref.Address)
	assert.NotContains(u.t, text, ref.DisplayName)
}

// assertDecoded loads page and waits for the workflow's input, decoded.
func (u *ui) assertDecoded(page string, ref contract.MailboxRef) {
	u.t.Helper()
	require.NoError(u.t, chromedp.Do(u.bctx, chromedp.Navigate(page)))
	require.Eventually(u.t, func() bool {
		expandInput(u.t, u.bctx)
		return strings.Contains(u.bodyText(), ref.Address)
	}, time.Minute, time.Second, "the UI did not show the decoded input")
	assert.Contains(u.t, u.bodyText(), ref.DisplayName)
}

// TestUIShowsAMailboxsCurrentDetails: a mailbox run by the real worker
// keeps its current details, which the UI's workflow page shows (decoded
// through the codec server): its stage and what it waits for, and a pause
// as soon as it arrives.
func TestUIShowsAMailboxsCurrentDetails(t *testing.T) {
	u := startUI(t)
	dir := t.TempDir()
	est := testkit.NewEstate(t, 7, 3)
	testkit.StartWorker(t, u.srv.Client(), workerapp.Config{
		TaskQueue: contract.TaskQueue, Notifier: "outbox", OutboxDir: filepath.Join(dir, "outbox"),
		Estate: "sim", Sim: config.Sim{Dir: est.Dir, TimeScale: 1e6, BytesPerSecond: 1 << 30},
		WavesDir: filepath.Join(dir, "waves"), ShutdownTimeout: 5 * time.Second,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	keyer, err := identity.NewKeyer([]byte("ui-details-secret"))
	require.NoError(t, err)
	mb := est.Mailboxes(t, keyer)[0]
	ref := contract.MailboxRef{Key: mb.Key, Address: mb.Address, Org: mb.Org, DisplayName: mb.DisplayName}
	run, err := u.srv.Client().ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.MailboxWorkflowID(ref.Key), TaskQueue: contract.TaskQueue},
		contract.MailboxWorkflowName, contract.MailboxInput{Mailbox: ref, MigrateAt: time.Now().Add(30 * 24 * time.Hour)})
	require.NoError(t, err)
	require.NoError(t, u.srv.Client().SignalWorkflow(ctx, run.GetID(), "", contract.SignalPause, contract.PauseRequest{Reason: "asked by the trust"}))

	// The details as a client reads them (the query the UI sends).
	var md sdkpb.WorkflowMetadata
	require.Eventually(t, func() bool {
		v, err := u.srv.Client().QueryWorkflow(ctx, run.GetID(), "", "__temporal_workflow_metadata")
		return err == nil && v.Get(&md) == nil && strings.Contains(md.GetCurrentDetails(), "paused by an operator")
	}, 30*time.Second, 200*time.Millisecond, "the worker does not answer with the details")
	t.Logf("current details: %q", md.GetCurrentDetails())

	u.signIn(u.token("dana"))
	page := fmt.Sprintf("%s/namespaces/default/workflows/%s/%s/history", u.origin, run.GetID(), run.GetRunID())
	require.NoError(t, chromedp.Do(u.bctx, chromedp.Navigate(page)))
	var text string
	ok := assert.Eventually(t, func() bool {
		u.open("User Metadata")
		text = u.bodyText()
		return strings.Contains(text, "scheduled since") && strings.Contains(text, "paused by an operator")
	}, time.Minute, time.Second)
	require.True(t, ok, "the UI did not show the mailbox's current details; the page:\n%s", text)
	assert.Contains(t, text, "T-14 notice at")
	assert.NotContains(t, text, ref.Address, "the page shows no address outside the decoded input")
}

// ui is the Temporal UI on a dev server, a codec server it is pointed at
// (with its signing key, revocation list, audit file and clock), and a
// browser whose UI settings name the codec server.
type ui struct {
	t           *testing.T
	srv         *testkit.DevServer
	origin      string
	codecURL    string
	bctx        context.Context
	key         ed25519.PrivateKey
	revocations string
	auditPath   string
	clock       *movableClock
	mu          sync.Mutex
	referers    []string // of the decode requests the browser made
}

// movableClock is the codec server's clock, moved by a test.
type movableClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *movableClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}
func (c *movableClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

func startUI(t *testing.T) *ui {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	require.NoError(t, err, "Chromium is needed for the UI test: apt-get install -y chromium")

	uiPort := freePort(t)
	dir := t.TempDir()
	key, err := accesstoken.NewKey()
	require.NoError(t, err)
	u := &ui{t: t, origin: fmt.Sprintf("http://localhost:%d", uiPort), key: key,
		revocations: filepath.Join(dir, "revoked"), auditPath: filepath.Join(dir, "codec-audit.jsonl"), clock: &movableClock{}}
	audit, err := codecserver.OpenAudit(u.auditPath)
	require.NoError(t, err)
	t.Cleanup(func() { _ = audit.Close() })
	h, err := codecserver.New(codecserver.Options{Codec: codec.New(testkit.TestKeyRing()).AcceptingPlain(), Namespaces: []string{"default"},
		Origins: []string{u.origin}, Verifier: accesstoken.NewVerifier(key.Public().(ed25519.PublicKey), u.revocations),
		Audit: audit, Now: u.clock.Now})
	require.NoError(t, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	// What the browser sends with a decode, besides the payloads.
	seen := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/decode") && r.Method == http.MethodPost {
			u.mu.Lock()
			u.referers = append(u.referers, r.Header.Get("Referer"))
			u.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	})
	codecSrv := &http.Server{Handler: seen, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = codecSrv.Serve(lis) }()
	t.Cleanup(func() { _ = codecSrv.Close() })
	u.codecURL = fmt.Sprintf("http://localhost:%d", lis.Addr().(*net.TCPAddr).Port)
	u.srv = testkit.NewDevServerWith(t, testkit.DevServerConfig{UIPort: uiPort, CodecEndpoint: u.codecURL})

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	u.bctx = bctx

	// The UI's own codec settings: the endpoint, and "include cross-origin
	// credentials", so the browser sends the codec server's cookie.
	settings := fmt.Sprintf(`localStorage.setItem("endpoint", JSON.stringify(%q));
		localStorage.setItem("includeCredentials", "true");
		localStorage.setItem("overrideRemoteCodecConfiguration", "true"); true`, u.codecURL)
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(u.origin+"/namespaces/default/workflows")))
	_, err = chromedp.Run(bctx, chromedp.Evaluate[bool](settings))
	require.NoError(t, err)
	return u
}

// bodyText is the page's text, with what the UI renders in frames (it
// shows markdown, such as current details, in sandboxed iframes).
func (u *ui) bodyText() string {
	text, err := chromedp.Run(u.bctx, chromedp.Evaluate[string](`document.body.innerText + "\n" +
		[...document.querySelectorAll('iframe')].map(f => {
			try { return f.contentDocument ? f.contentDocument.body.innerText : (f.srcdoc || '') }
			catch (e) { return f.srcdoc || '' }
		}).join("\n")`))
	require.NoError(u.t, err)
	return text
}

// open clicks the first button or tab whose text is label, if it is there
// (the UI folds some sections).
func (u *ui) open(label string) {
	_, _ = chromedp.Run(u.bctx, chromedp.Evaluate[bool](fmt.Sprintf(`(() => {
		const els = [...document.querySelectorAll('button, [role="tab"], summary, h2, h3')]
			.filter(e => (e.innerText || '').trim() === %q);
		if (els.length) { els[0].click(); return true }
		return false
	})()`, label)))
}

// token is a decoder's access token for who, issued now (by the codec
// server's clock).
func (u *ui) token(who string) string {
	u.t.Helper()
	now := u.clock.Now()
	tok, err := accesstoken.Issue(u.key, accesstoken.Claims{Subject: who, Roles: []accesstoken.Role{accesstoken.Decoder},
		Namespace: "default", IssuedAt: now, Expires: now.Add(12 * time.Hour)})
	require.NoError(u.t, err)
	return tok
}

// records reads the codec server's audit file.
func (u *ui) records() []codecserver.Record {
	u.t.Helper()
	b, err := os.ReadFile(u.auditPath)
	require.NoError(u.t, err)
	var out []codecserver.Record
	for line := range strings.Lines(string(b)) {
		var r codecserver.Record
		require.NoError(u.t, json.Unmarshal([]byte(line), &r), line)
		out = append(out, r)
	}
	return out
}

// noPlaintextInAudit: the audit file holds no payload text.
func (u *ui) noPlaintextInAudit(ref contract.MailboxRef) {
	u.t.Helper()
	b, err := os.ReadFile(u.auditPath)
	require.NoError(u.t, err)
	assert.NotContains(u.t, string(b), ref.Address)
	assert.NotContains(u.t, string(b), ref.DisplayName)
	assert.NotContains(u.t, strings.ToLower(string(b)), "nhs.example")
}

// signIn signs the browser in at the codec server with token.
func (u *ui) signIn(token string) {
	require.NoError(u.t, chromedp.Do(u.bctx,
		chromedp.Navigate(u.codecURL+"/login"),
		chromedp.SendKeys(chromedp.CSS(`input[name=token]`), token),
		chromedp.Submit(chromedp.CSS(`input[name=token]`)),
		chromedp.WaitVisible(chromedp.CSS(`#signed-in`)),
	))
	signedIn, err := chromedp.Run(u.bctx, chromedp.Text(chromedp.CSS(`#signed-in`)))
	require.NoError(u.t, err)
	require.Contains(u.t, signedIn, "Signed in")
}

// expandInput opens the first event's details, where the UI shows the
// workflow's input, if it is folded.
func expandInput(t *testing.T, bctx context.Context) {
	t.Helper()
	_, _ = chromedp.Run(bctx, chromedp.Evaluate[bool](`(() => {
		const rows = [...document.querySelectorAll('[data-testid*="event"], tr, button')]
			.filter(e => /Workflow Execution Started|WorkflowExecutionStarted/i.test(e.innerText || ''));
		if (rows.length) { rows[0].click(); return true }
		return false
	})()`))
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
