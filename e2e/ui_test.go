package e2e_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
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
	"mailwave/testkit"
	"mailwave/worker/config"
	"mailwave/worker/workerapp"
)

// TestUIDecodesThroughTheCodecServer drives the Temporal UI in a real
// browser (Debian's Chromium): a mailbox's input, stored encrypted, shows
// as ciphertext until the browser signs in to the codec server, and then
// decoded, address and name.
func TestUIDecodesThroughTheCodecServer(t *testing.T) {
	u := startUI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ref := contract.MailboxRef{Key: "ui-1", Address: "zoe.quinn@trust-a.nhs.example", DisplayName: "Zoe Quinn"}
	run, err := u.srv.Client().ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.MailboxWorkflowID(ref.Key), TaskQueue: "no-worker-polls-this"},
		contract.MailboxWorkflowName, contract.MailboxInput{Mailbox: ref, MigrateAt: time.Now().Add(30 * 24 * time.Hour)})
	require.NoError(t, err)

	page := fmt.Sprintf("%s/namespaces/default/workflows/%s/%s/history", u.origin, run.GetID(), run.GetRunID())
	// Not signed in: the history renders, its input undecoded.
	require.NoError(t, chromedp.Do(u.bctx, chromedp.Navigate(page)))
	require.Eventually(t, func() bool { return strings.Contains(u.bodyText(), "MailboxMigration") }, time.Minute, 500*time.Millisecond,
		"the UI did not show the workflow")
	expandInput(t, u.bctx)
	time.Sleep(3 * time.Second) // time for a decode attempt to have happened
	before := u.bodyText()
	// The input is on the page, sealed: its encoding, binary/encrypted, in
	// base64 as the UI shows undecoded metadata.
	assert.Contains(t, before, "YmluYXJ5L2VuY3J5cHRlZA==")
	assert.NotContains(t, before, ref.Address)
	assert.NotContains(t, before, ref.DisplayName)

	// Sign in at the codec server, then the same page shows the input.
	u.signIn()
	require.NoError(t, chromedp.Do(u.bctx, chromedp.Navigate(page)))
	require.Eventually(t, func() bool {
		expandInput(t, u.bctx)
		return strings.Contains(u.bodyText(), ref.Address)
	}, time.Minute, time.Second, "the UI did not show the decoded input")
	assert.Contains(t, u.bodyText(), ref.DisplayName)
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

	u.signIn()
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

// ui is the Temporal UI on a dev server, a codec server it is pointed at,
// and a browser whose UI settings name the codec server.
type ui struct {
	t        *testing.T
	srv      *testkit.DevServer
	origin   string
	codecURL string
	bctx     context.Context
}

const uiCodecToken = "ui-test-codec-token-0123456789"

func startUI(t *testing.T) *ui {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	require.NoError(t, err, "Chromium is needed for the UI test: apt-get install -y chromium")

	uiPort := freePort(t)
	u := &ui{t: t, origin: fmt.Sprintf("http://localhost:%d", uiPort)}
	h, err := codecserver.New(codecserver.Options{Codec: codec.New(testkit.TestKeyRing()), Namespaces: []string{"default"},
		Tokens: []string{uiCodecToken}, Origins: []string{u.origin}})
	require.NoError(t, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	codecSrv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
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

// signIn signs the browser in at the codec server.
func (u *ui) signIn() {
	require.NoError(u.t, chromedp.Do(u.bctx,
		chromedp.Navigate(u.codecURL+"/login"),
		chromedp.SendKeys(chromedp.CSS(`input[name=token]`), uiCodecToken),
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
