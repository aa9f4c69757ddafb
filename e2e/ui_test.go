package e2e_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"mailwave/contract"
	"mailwave/internal/codec"
	"mailwave/internal/codecserver"
	"mailwave/internal/testkit"
)

// TestUIDecodesThroughTheCodecServer drives the Temporal UI in a real
// browser (Debian's Chromium): a mailbox's input, stored encrypted, shows
// as ciphertext until the browser signs in to the codec server, and then
// decoded, address and name.
func TestUIDecodesThroughTheCodecServer(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	require.NoError(t, err, "Chromium is needed for the UI test: apt-get install -y chromium")

	const token = "ui-test-codec-token-0123456789"
	uiPort := freePort(t)
	uiOrigin := fmt.Sprintf("http://localhost:%d", uiPort)
	h, err := codecserver.New(codecserver.Options{Codec: codec.New(testkit.TestKeyRing()), Namespaces: []string{"default"},
		Tokens: []string{token}, Origins: []string{uiOrigin}})
	require.NoError(t, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	codecSrv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = codecSrv.Serve(lis) }()
	t.Cleanup(func() { _ = codecSrv.Close() })
	codecURL := fmt.Sprintf("http://localhost:%d", lis.Addr().(*net.TCPAddr).Port)

	srv := testkit.NewDevServerWith(t, testkit.DevServerConfig{UIPort: uiPort, CodecEndpoint: codecURL})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ref := contract.MailboxRef{Key: "ui-1", Address: "zoe.quinn@trust-a.nhs.example", DisplayName: "Zoe Quinn"}
	run, err := srv.Client().ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.MailboxWorkflowID(ref.Key), TaskQueue: "no-worker-polls-this"},
		contract.MailboxWorkflowName, contract.MailboxInput{Mailbox: ref, MigrateAt: time.Now().Add(30 * 24 * time.Hour)})
	require.NoError(t, err)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()))
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()

	page := fmt.Sprintf("%s/namespaces/default/workflows/%s/%s/history", uiOrigin, run.GetID(), run.GetRunID())
	// The UI's own codec settings: the endpoint, and "include cross-origin
	// credentials", so the browser sends the codec server's cookie.
	settings := fmt.Sprintf(`localStorage.setItem("endpoint", JSON.stringify(%q));
		localStorage.setItem("includeCredentials", "true");
		localStorage.setItem("overrideRemoteCodecConfiguration", "true"); true`, codecURL)
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(uiOrigin+"/namespaces/default/workflows")))
	_, err = chromedp.Run(bctx, chromedp.Evaluate[bool](settings))
	require.NoError(t, err)

	bodyText := func() string {
		text, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.body.innerText`))
		require.NoError(t, err)
		return text
	}
	// Not signed in: the history renders, its input undecoded.
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(page)))
	require.Eventually(t, func() bool { return strings.Contains(bodyText(), "MailboxMigration") }, time.Minute, 500*time.Millisecond,
		"the UI did not show the workflow")
	expandInput(t, bctx)
	time.Sleep(3 * time.Second) // time for a decode attempt to have happened
	before := bodyText()
	// The input is on the page, sealed: its encoding, binary/encrypted, in
	// base64 as the UI shows undecoded metadata.
	assert.Contains(t, before, "YmluYXJ5L2VuY3J5cHRlZA==")
	assert.NotContains(t, before, ref.Address)
	assert.NotContains(t, before, ref.DisplayName)

	// Sign in at the codec server, then the same page shows the input.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Navigate(codecURL+"/login"),
		chromedp.SendKeys(chromedp.CSS(`input[name=token]`), token),
		chromedp.Submit(chromedp.CSS(`input[name=token]`)),
		chromedp.WaitVisible(chromedp.CSS(`#signed-in`)),
	))
	signedIn, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(`#signed-in`)))
	require.NoError(t, err)
	require.Contains(t, signedIn, "Signed in")
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(page)))
	require.Eventually(t, func() bool {
		expandInput(t, bctx)
		return strings.Contains(bodyText(), ref.Address)
	}, time.Minute, time.Second, "the UI did not show the decoded input")
	assert.Contains(t, bodyText(), ref.DisplayName)
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
