package imapcopy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/mail/adapt"
	"mailwave/mail/imapcopy"
	"mailwave/mail/port"
	"mailwave/testkit/imaptest"
	"mailwave/testkit/throttleproxy"
)

// appendPaths are the copier's three ways of appending to a target:
// MULTIAPPEND batches, pipelined LITERAL+ APPENDs (Exchange Online's way:
// it has no MULTIAPPEND), and go-imap's APPEND, one answer awaited at a
// time.
var appendPaths = []struct {
	name string
	mod  func(*imapcopy.Options)
}{
	{"multiappend", func(*imapcopy.Options) {}},
	{"pipelined", func(o *imapcopy.Options) { o.NoMultiAppend = true }},
	{"append", func(o *imapcopy.Options) { o.NoPipeline = true }},
}

// isScan matches the target-side FETCH of Message-IDs that an attempt
// makes to find what earlier attempts left on the target.
func isScan(line string) bool {
	up := strings.ToUpper(line)
	return strings.Contains(up, "FETCH") && strings.Contains(up, "HEADER.FIELDS (") && strings.Contains(up, "MESSAGE-ID")
}

// isCheck matches the target-side FETCH of a whole folder's index with
// which an attempt checks a folder it has copied.
func isCheck(line string) bool {
	up := strings.ToUpper(line)
	return strings.Contains(up, " FETCH 1:* (") && !strings.Contains(up, "UID FETCH") && !strings.Contains(up, "BODY")
}

// faultCase is one row of the fault matrix: the proxy's options, and what
// the row does before the copy (arm a fault) and after each failed attempt.
type faultCase struct {
	name  string // short: it names the test's directories, and a socket's path is short
	what  string
	proxy throttleproxy.Options
	rate  bool // the copier paces through an adaptive rate
	// arm runs before the first attempt; the channel it returns, if any,
	// must be closed by the end (the fault struck and did all it does).
	arm func(t *testing.T, fx *faultFixture) <-chan struct{}
	// failed runs after a failed attempt (n from 1).
	failed func(t *testing.T, fx *faultFixture, n int)
	// kill: the first attempt runs in a child process killed mid-batch.
	kill bool
	// lanes: 1 makes the order of the folders certain (default 2).
	lanes int
	// repairs: the row must make the copier remove duplicates it made.
	repairs bool
}

// faultFixture is one row on one path: a seeded source, a target behind
// the proxy, and the copier.
type faultFixture struct {
	p    pair
	px   *throttleproxy.Proxy
	c    *imapcopy.Copier
	path func(*imapcopy.Options)
}

// inject arms one fault on the row's proxy.
func inject(f throttleproxy.Fault) func(*testing.T, *faultFixture) <-chan struct{} {
	return func(_ *testing.T, fx *faultFixture) <-chan struct{} { return fx.px.Inject(f) }
}

// remade are the folders the UIDVALIDITY rows make again (INBOX cannot
// be deleted): Sent is copied beside INBOX from the start.
var remade = []string{"Sent", "Drafts"}

var faultMatrix = []faultCase{
	{
		name: "reset-unread",
		what: "reset before the server reads an APPEND",
		arm:  inject(throttleproxy.Fault{Kind: throttleproxy.ResetBeforeSend, At: 3}),
	},
	{
		name: "reset-applied",
		what: "reset after the server applied an APPEND, before its answer",
		arm:  inject(throttleproxy.Fault{Kind: throttleproxy.ResetAfterApply, At: 3}),
	},
	{
		name:    "late-append",
		what:    "APPEND held at the reset, delivered after the next attempt's scan",
		lanes:   1,
		repairs: true,
		arm:     inject(throttleproxy.Fault{Kind: throttleproxy.DeliverLate, At: 3, After: isScan}),
	},
	{
		name:    "late-after-check",
		what:    "APPEND held at the reset, delivered after the next attempt checked its folder",
		lanes:   1,
		repairs: true,
		arm:     inject(throttleproxy.Fault{Kind: throttleproxy.DeliverLate, At: 3, After: isCheck}),
	},
	{
		name: "server-restart",
		what: "target server killed and restarted mid-folder",
		arm: func(t *testing.T, fx *faultFixture) <-chan struct{} {
			return fx.px.Inject(throttleproxy.Fault{Kind: throttleproxy.Call, At: 3, Do: func() {
				assert.NoError(t, fx.p.tgt.Restart())
			}})
		},
	},
	{
		name: "worker-kill",
		what: "worker killed (SIGKILL) mid-batch, resumed from an older checkpoint",
		kill: true,
	},
	{
		name:  "storm-backoff",
		what:  "refusal storm with a back-off figure",
		proxy: throttleproxy.Options{Limit: 3 << 20, Burst: 256 << 10},
		rate:  true,
	},
	{
		name:  "storm-drops",
		what:  "refusal storm without a figure, each refusal dropping the connection",
		proxy: throttleproxy.Options{Limit: 3 << 20, Burst: 256 << 10, MaxRefusals: 1, NoBackoff: true},
		rate:  true,
	},
	{
		name: "uidvalidity",
		what: "source folder's UIDVALIDITY changed after a reset",
		arm:  inject(throttleproxy.Fault{Kind: throttleproxy.ResetAfterApply, At: 3}),
		failed: func(t *testing.T, fx *faultFixture, n int) {
			if n == 1 {
				for _, f := range remade {
					remakeSourceFolder(t, fx.p, f)
				}
			}
		},
	},
	{
		name: "target-remade",
		what: "target folder deleted and made again after a reset",
		arm:  inject(throttleproxy.Fault{Kind: throttleproxy.ResetAfterApply, At: 3}),
		failed: func(t *testing.T, fx *faultFixture, n int) {
			if n == 1 {
				tc, err := imaptest.Dial(fx.p.tgt.Addr(), user, password)
				require.NoError(t, err)
				defer tc.Close()
				for _, f := range remade {
					before, after, err := imaptest.RecreateFolder(tc, f)
					require.NoError(t, err)
					require.NotEqual(t, before, after)
				}
			}
		},
	},
}

// TestFaultMatrix copies the standard account through every fault on every
// append path. Each row must end with the target an exact match of the
// source (every message, by folder, flags, date, size and content, as
// often as the source has it: nothing missing, nothing twice), and the
// fault must have struck. The matrix's size and outcome are printed.
func TestFaultMatrix(t *testing.T) {
	var mu sync.Mutex
	var passed, failed []string
	t.Cleanup(func() { // after every row, parallel ones included
		fmt.Printf("fault matrix: %d faults x %d append paths = %d rows; %d ran: %d passed, %d failed\n",
			len(faultMatrix), len(appendPaths), len(faultMatrix)*len(appendPaths), len(passed)+len(failed), len(passed), len(failed))
		slices.Sort(failed)
		for _, f := range failed {
			fmt.Printf("fault matrix: FAILED %s\n", f)
		}
		if testing.Verbose() {
			for _, fc := range faultMatrix {
				fmt.Printf("fault matrix: %-14s %s\n", fc.name, fc.what)
			}
		}
	})
	for _, fc := range faultMatrix {
		for _, path := range appendPaths {
			name := fc.name + "/" + path.name
			t.Run(name, func(t *testing.T) {
				// Rows wait more than they compute (on rates, restarts,
				// a child process): two at a time.
				t.Parallel()
				t.Cleanup(func() {
					mu.Lock()
					defer mu.Unlock()
					if t.Failed() {
						failed = append(failed, name)
					} else {
						passed = append(passed, name)
					}
				})
				runFaultCase(t, fc, path.mod)
			})
		}
	}
}

func runFaultCase(t *testing.T, fc faultCase, path func(*imapcopy.Options)) {
	p := startPair(t)
	p.seed(t)
	preexisting(t, p)
	px, err := throttleproxy.Start(p.tgt.Addr(), fc.proxy)
	require.NoError(t, err)
	t.Cleanup(func() { px.Close() })
	fx := &faultFixture{p: p, px: px, path: path}
	fx.c = p.copier(t, func(o *imapcopy.Options) {
		o.Target = imapcopy.Endpoint{Host: px.Host(), Port: px.Port(), Security: imapcopy.SecurityNone}
		if fc.rate {
			o.Rate = adapt.New(adapt.Options{Name: "test"})
		}
		if fc.lanes > 0 {
			o.Lanes = fc.lanes
		}
		path(o)
	})
	var struck <-chan struct{}
	if fc.arm != nil {
		struck = fc.arm(t, fx)
	}
	var cp contract.Checkpoint
	failures := 0
	if fc.kill {
		cp = killedCopy(t, p, path)
		failures++
	}
	var total contract.CopyStats
	for attempt := 1; ; attempt++ {
		require.LessOrEqual(t, attempt, 50, "the copy never ended")
		stats, err := fx.c.Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk, Checkpoint: cp,
			Progress: func(c contract.Checkpoint, _ contract.CopyStats) { cp = c }})
		total = total.Add(stats)
		if err == nil {
			break
		}
		typ, permanent := port.IsPermanent(err)
		require.False(t, permanent, "%s: %v", typ, err)
		failures++
		var thr *port.ThrottledError
		if errors.As(err, &thr) {
			time.Sleep(min(thr.RetryAfter, 2*time.Second))
		}
		if fc.failed != nil {
			fc.failed(t, fx, failures)
		}
	}
	requireSame(t, p)
	if struck != nil {
		select {
		case <-struck:
		default:
			t.Fatal("the fault never struck")
		}
	}
	st := px.Stats()
	if fc.proxy.Limit > 0 {
		assert.Positive(t, st.AppendsRefused, "the target refused")
	} else {
		assert.Positive(t, failures, "an attempt met the fault")
	}
	if fc.repairs {
		assert.Positive(t, total.Duplicates, "the late APPEND made a duplicate, which the copier removed")
	}
	t.Logf("%d failed attempts; %d items copied, %d found there, %d duplicates removed; proxy: %d refused, %d dropped, %d faults",
		failures, total.Items, total.Skipped, total.Duplicates, st.AppendsRefused, st.Dropped, st.Faults)
}

// remakeSourceFolder deletes a source folder and makes it again with the
// same messages, in the same order: a new UIDVALIDITY, the UIDs from 1.
func remakeSourceFolder(t *testing.T, p pair, folder string) {
	t.Helper()
	msgs := snapshotRaw(t, p.src, folder)
	cl, err := imaptest.Dial(p.src.Addr(), user, password)
	require.NoError(t, err)
	defer cl.Close()
	before, _, err := imaptest.RecreateFolder(cl, folder)
	require.NoError(t, err)
	require.NoError(t, imaptest.Seed(cl, msgs, nil))
	st, err := cl.Status(folder, &imap.StatusOptions{UIDValidity: true}).Wait()
	require.NoError(t, err)
	require.NotEqual(t, before, st.UIDValidity)
}

// killedCopy copies in a child process that is killed (SIGKILL) once it
// has reported its third checkpoint, in the middle of its batches; it
// returns the first checkpoint, so the resumed copy also meets messages
// that later, lost heartbeats covered.
func killedCopy(t *testing.T, p pair, path func(*imapcopy.Options)) contract.Checkpoint {
	t.Helper()
	var o imapcopy.Options
	path(&o)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCopyProcess$")
	cmd.Env = append(os.Environ(), "MAILWAVE_HELPER_COPY=1",
		"MAILWAVE_HELPER_SRC="+strconv.Itoa(p.src.Port), "MAILWAVE_HELPER_TGT="+strconv.Itoa(p.tgt.Port),
		"MAILWAVE_HELPER_WINDOW=4",
		"MAILWAVE_HELPER_NO_MULTIAPPEND="+strconv.FormatBool(o.NoMultiAppend),
		"MAILWAVE_HELPER_NO_PIPELINE="+strconv.FormatBool(o.NoPipeline))
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	var first contract.Checkpoint
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	reports := 0
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "CHECKPOINT ")
		if !ok {
			continue
		}
		var cp contract.Checkpoint
		require.NoError(t, json.Unmarshal([]byte(line), &cp))
		if reports++; reports == 1 {
			first = cp
		}
		if reports == 3 {
			require.NoError(t, cmd.Process.Kill())
			break
		}
	}
	_ = cmd.Wait()
	require.Equal(t, 3, reports, "the child reported progress before it was killed")
	require.Less(t, len(snapshot(t, p.tgt)), len(snapshot(t, p.src)), "the child was killed mid-way")
	return first
}

// preexisting puts on the target's INBOX, before the copy, the user's own
// copy of the source's first INBOX message: the copy finds it there and
// leaves it (the target ends an exact match), and every attempt looks at
// that folder's messages, so the late APPEND row's release comes.
func preexisting(t *testing.T, p pair) {
	t.Helper()
	_, msgs := imaptest.StandardSeed()
	tc, err := imaptest.Dial(p.tgt.Addr(), user, password)
	require.NoError(t, err)
	defer tc.Close()
	require.Equal(t, "INBOX", msgs[0].Folder)
	require.NoError(t, imaptest.Seed(tc, msgs[:1], nil))
}
