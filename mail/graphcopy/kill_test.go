package graphcopy_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/internal/tlsconf"
	"mailwave/mail/graph"
	"mailwave/mail/graphcopy"
	"mailwave/mail/port"
	"mailwave/testkit/dovecot"
	"mailwave/testkit/fakegraph"
	"mailwave/testkit/imaptest"
)

// The child's environment: TestHelperGraphCopyProcess copies when
// envChild is set.
const (
	envChild      = "MAILWAVE_GRAPH_CHILD"
	envSource     = "MAILWAVE_GRAPH_CHILD_SOURCE"     // the source's port on loopback
	envURL        = "MAILWAVE_GRAPH_CHILD_URL"        // login and Graph base URL (the recorder)
	envCA         = "MAILWAVE_GRAPH_CHILD_CA"         // PEM file of the fake's certificate
	envCheckpoint = "MAILWAVE_GRAPH_CHILD_CHECKPOINT" // where each reported checkpoint is written
)

// killFolders are the kill test's source folders, in the order the copier
// takes them (by name).
var killFolders = []string{"Archive", "INBOX", "Projects/2024", "Sent", "Trash"}

// killSource is a Dovecot account of 300 messages (12 MB, log-normal
// sizes) over five folders, with five messages among them whose
// attachments (3.5 to 7 MB) go through upload sessions, some of them in
// three chunks.
func killSource(t *testing.T) (*dovecot.Server, int) {
	t.Helper()
	src := dovecot.StartT(t, dovecot.Options{Users: []dovecot.User{{Name: user, Password: password}}, Plaintext: true, Storage: dovecot.Maildir})
	msgs := slices.Collect(imaptest.GenerateBulk(21, 300, 12<<20, killFolders))
	large := []struct {
		at     int
		folder string
		size   int
	}{{40, "Archive", 7 << 20}, {90, "INBOX", 7 << 20}, {130, "INBOX", 3<<20 + 512<<10}, {190, "Projects/2024", 4 << 20}, {250, "Sent", 7 << 20}}
	for i, l := range slices.Backward(large) {
		m := imaptest.SeedMessage{Folder: l.folder, Flags: []imap.Flag{imap.FlagSeen}, InternalDate: time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC),
			Raw: withAttachments(fmt.Sprintf("kill-large-%d@mailwave.test", i), l.size)}
		msgs = slices.Insert(msgs, l.at, m)
	}
	n, _, err := imaptest.SeedMaildir(src, user, imaptest.BulkFolders(killFolders), slices.Values(msgs))
	require.NoError(t, err)
	return src, n
}

// withAttachments is a message with a text part and an attachment of
// pseudo-random bytes for each size.
func withAttachments(id string, sizes ...int) []byte {
	const boundary = "graphcopy-boundary-5e1"
	var b bytes.Buffer
	fmt.Fprintf(&b, "Date: Thu, 04 Mar 2021 05:06:07 +0000\r\nFrom: Scanner <scanner@example.com>\r\nTo: alice@example.org\r\n"+
		"Subject: Attachments of %v bytes\r\nMessage-ID: <%s>\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: multipart/mixed; boundary=%q\r\n\r\n--%s\r\nContent-Type: text/plain\r\n\r\nAttached.\r\n",
		sizes, id, boundary, boundary)
	for i, size := range sizes {
		data := make([]byte, size)
		_, _ = rand.NewChaCha8([32]byte{byte(size), byte(size >> 8), byte(size >> 16), byte(i)}).Read(data)
		fmt.Fprintf(&b, "--%s\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"scan-%d.bin\"\r\n"+
			"Content-Transfer-Encoding: base64\r\n\r\n", boundary, i+1)
		b.Write(base64Lines(data))
	}
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return b.Bytes()
}

// base64Lines is data in base64, in lines of 76 characters ending CRLF.
func base64Lines(data []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(data)
	var b bytes.Buffer
	b.Grow(len(enc) + len(enc)/38 + 2)
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc)
	b.WriteString("\r\n")
	return b.Bytes()
}

// event is what the recorder saw one request do at the fake.
type event struct {
	kind     string // create, complete, delete, session, chunk
	item     string // the item's ID
	identity string // create and complete: the source identity it carries
	mid      bool   // chunk: neither the session's first nor its last
}

// recorder stands between the copies and the fake Graph, as a tenant's
// front door does: each request it reads whole is passed on whole and
// applied, even when its client has died meanwhile; it records what each
// request made, and at a request the test chooses it kills the child
// copying, once the fake has applied that request and before its answer
// goes back.
type recorder struct {
	t        *testing.T
	srv      *httptest.Server
	fake     *fakegraph.Server
	cpFile   string
	mu       sync.Mutex
	events   []event
	inFlight int
	creates  int
	// history is every checkpoint the child had written, as the recorder
	// found the file at each create (the server's recorded heartbeats).
	history []contract.Checkpoint
	lastRaw []byte
	// killAt, if set, decides after each request whether the child dies
	// now (inFlight counts this request too); kill kills it and returns
	// once it is gone.
	killAt     func(ev event, creates, inFlight int) bool
	kill       func()
	killed     bool
	killedWith int // requests in flight when the child was killed
}

func startRecorder(t *testing.T, fake *fakegraph.Server, cpFile string) *recorder {
	rec := &recorder{t: t, fake: fake, cpFile: cpFile}
	rec.srv = httptest.NewUnstartedServer(rec)
	// A worker killed in a TLS handshake is no news.
	rec.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	rec.srv.StartTLS()
	t.Cleanup(rec.srv.Close)
	return rec
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec.mu.Lock()
	rec.inFlight++
	rec.mu.Unlock()
	defer func() {
		rec.mu.Lock()
		rec.inFlight--
		rec.mu.Unlock()
	}()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return // the client died before its request was whole: never sent on
	}
	// Not the client's context: a request the service has is applied.
	req, err := http.NewRequestWithContext(context.Background(), r.Method, rec.fake.URL+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		rec.t.Errorf("recorder: %v", err)
		return
	}
	for _, h := range []string{"Authorization", "Content-Type", "Content-Range"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	resp, err := rec.fake.Client().Do(req)
	if err != nil {
		rec.t.Errorf("recorder: %v", err)
		return
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		rec.t.Errorf("recorder: %v", err)
		return
	}
	// Upload sessions and next pages come back here too.
	answer = bytes.ReplaceAll(answer, []byte(rec.fake.URL), []byte(rec.srv.URL))
	ev, ok := classify(r, body, resp.StatusCode, answer)
	rec.mu.Lock()
	if ok {
		rec.events = append(rec.events, ev)
		if ev.kind == "create" {
			rec.creates++
			rec.readCheckpoint()
		}
	}
	die := ok && !rec.killed && rec.killAt != nil && rec.killAt(ev, rec.creates, rec.inFlight)
	if die {
		rec.killed, rec.killedWith = true, rec.inFlight
	}
	rec.mu.Unlock()
	if die {
		rec.kill() // its answer never reaches it
		return
	}
	for _, h := range []string{"Content-Type", "Retry-After", "WWW-Authenticate"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
}

// readCheckpoint keeps the child's checkpoint file if it changed (rec.mu
// held).
func (rec *recorder) readCheckpoint() {
	raw, err := os.ReadFile(rec.cpFile)
	if err != nil || bytes.Equal(raw, rec.lastRaw) {
		return
	}
	var cp contract.Checkpoint
	if json.Unmarshal(raw, &cp) == nil {
		rec.lastRaw = raw
		rec.history = append(rec.history, cp)
	}
}

// classify names what an answered request did.
func classify(r *http.Request, body []byte, status int, answer []byte) (event, bool) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	last := parts[len(parts)-1]
	var out struct{ ID string }
	_ = json.Unmarshal(answer, &out)
	switch {
	case r.Method == http.MethodPost && last == "messages" && status == http.StatusCreated:
		return event{kind: "create", item: out.ID, identity: sourceOf(body)}, true
	case r.Method == http.MethodPatch && status == http.StatusOK:
		return event{kind: "complete", item: last, identity: sourceOf(body)}, true
	case r.Method == http.MethodDelete && status == http.StatusNoContent:
		return event{kind: "delete", item: last}, true
	case last == "createUploadSession" && status == http.StatusCreated:
		return event{kind: "session", item: parts[len(parts)-3]}, true
	case r.Method == http.MethodPut && parts[0] == "upload" && status < 300:
		var from, to, total int
		_, _ = fmt.Sscanf(r.Header.Get("Content-Range"), "bytes %d-%d/%d", &from, &to, &total)
		return event{kind: "chunk", mid: from > 0 && to+1 < total}, true
	}
	return event{}, false
}

// sourceOf is the source identity a create or an update carries.
func sourceOf(body []byte) string {
	var in struct {
		Props []struct{ ID, Value string } `json:"singleValueExtendedProperties"`
	}
	_ = json.Unmarshal(body, &in)
	for _, p := range in.Props {
		if strings.EqualFold(p.ID, graph.SourceProperty) {
			return p.Value
		}
	}
	return ""
}

func (rec *recorder) state() (events []event, history []contract.Checkpoint, inFlight int) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.events), slices.Clone(rec.history), rec.inFlight
}

// viaGraph is a copier from the source at a port on loopback into Graph
// at base (its login endpoint there too), as a worker builds one: its own
// tokens and budgets.
func viaGraph(t *testing.T, sourcePort int, base string, hc *http.Client) *graphcopy.Copier {
	t.Helper()
	tokens, err := graph.NewTokens(context.Background()).Source(graph.App{Tenant: "t", ClientID: "app", Secret: "pw", LoginURL: base, HTTP: hc}, graph.ScopeGraph)
	require.NoError(t, err)
	budgets, err := graph.NewBudgets(graph.DefaultLimits)
	require.NoError(t, err)
	c, err := graphcopy.New(graphcopy.Options{Source: sourceAt(t, sourcePort), Graph: graph.NewClient(hc, base+"/v1.0", tokens, budgets)})
	require.NoError(t, err)
	return c
}

// TestHelperGraphCopyProcess is the worker that
// TestAWorkerKilledMidCopyCreatesNothingTwice kills: it copies the
// mailbox into the Graph at envURL, writing each checkpoint it reports to
// envCheckpoint (whole, by a rename), as its heartbeats would carry them.
func TestHelperGraphCopyProcess(t *testing.T) {
	if os.Getenv(envChild) != "1" {
		t.Skip("run by TestAWorkerKilledMidCopyCreatesNothingTwice")
	}
	srcPort, err := strconv.Atoi(os.Getenv(envSource))
	require.NoError(t, err)
	pool, err := tlsconf.CertPool(os.Getenv(envCA))
	require.NoError(t, err)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	path := os.Getenv(envCheckpoint)
	c := viaGraph(t, srcPort, os.Getenv(envURL), hc)
	_, err = c.Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk,
		Progress: func(cp contract.Checkpoint, _ contract.CopyStats) {
			b, err := json.Marshal(cp)
			if err == nil {
				err = os.WriteFile(path+".tmp", b, 0o600)
			}
			if err == nil {
				err = os.Rename(path+".tmp", path)
			}
			if err != nil {
				panic(err)
			}
		}})
	require.NoError(t, err)
}

// killCase is where the worker dies and where its copy resumes from.
type killCase struct {
	name string
	// killAt decides, after each request the fake answered, that the
	// worker dies before that answer reaches it.
	killAt func(ev event, creates, inFlight int) bool
	// from picks the checkpoint the copy resumes from: the last the worker
	// wrote, or one of the earlier ones (history, oldest first).
	from func(t *testing.T, last contract.Checkpoint, history []contract.Checkpoint) contract.Checkpoint
	// partial: the worker dies in the middle of an upload session, leaving
	// an item marked partial.
	partial bool
}

var killCases = []killCase{
	{
		name: "mid-create/last-checkpoint",
		// The 100th create applied, its answer lost, others in flight.
		killAt: func(ev event, creates, inFlight int) bool {
			return ev.kind == "create" && creates >= 100 && inFlight >= 2
		},
		from: func(t *testing.T, last contract.Checkpoint, _ []contract.Checkpoint) contract.Checkpoint {
			require.NotZero(t, uidsCovered(last), "the worker wrote a checkpoint before it died")
			return last
		},
	},
	{
		name: "mid-upload/older-checkpoint",
		// A chunk in the middle of an upload session applied, past the
		// first 120 creates.
		killAt: func(ev event, creates, _ int) bool {
			return ev.kind == "chunk" && ev.mid && creates >= 120
		},
		from: func(t *testing.T, last contract.Checkpoint, history []contract.Checkpoint) contract.Checkpoint {
			require.NotEmpty(t, history)
			older := history[0]
			require.Less(t, uidsCovered(older), uidsCovered(last), "an older checkpoint than the last")
			return older
		},
		partial: true,
	},
	{
		name: "mid-create/no-checkpoint",
		killAt: func(ev event, creates, inFlight int) bool {
			return ev.kind == "create" && creates >= 200 && inFlight >= 2
		},
		from: func(*testing.T, contract.Checkpoint, []contract.Checkpoint) contract.Checkpoint {
			return contract.Checkpoint{} // a re-run
		},
	},
}

// uidsCovered adds up a checkpoint's last UIDs: which of two checkpoints
// is older.
func uidsCovered(cp contract.Checkpoint) int {
	n := 0
	for _, fc := range cp.Folders {
		n += int(fc.LastUID)
	}
	return n
}

// TestAWorkerKilledMidCopyCreatesNothingTwice: a worker process copying a
// Dovecot mailbox (300 messages in five folders, five with attachments
// through upload sessions) into the fake Graph is SIGKILLed with requests
// in flight, its last answer lost (once while a create is being applied,
// once in the middle of an upload session); another worker resumes the
// copy from the last checkpoint the dead one wrote, from an older one, or
// from none at all. Every source message ends up once in its folder, no
// partial item is left, the resumed copy's items and skips add up with
// what the checkpoint covered, and no source message was ever made twice:
// each identity was completed once, over both workers, and the only items
// removed are partial ones.
func TestAWorkerKilledMidCopyCreatesNothingTwice(t *testing.T) {
	src, total := killSource(t)
	want := sourceTargets(t, src.Port)
	require.Len(t, want, total)
	for _, kc := range killCases {
		t.Run(kc.name, func(t *testing.T) { runKillCase(t, kc, src, want) })
	}
}

func runKillCase(t *testing.T, kc killCase, src *dovecot.Server, want map[string]sourceTarget) {
	e := setupOn(t, src, fakegraph.Options{Latency: 20 * time.Millisecond})
	dir := t.TempDir()
	caFile, cpFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "checkpoint.json")
	require.NoError(t, os.WriteFile(caFile, e.graph.CAPEM(), 0o600))
	rec := startRecorder(t, e.graph, cpFile)

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperGraphCopyProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), envChild+"=1", envSource+"="+strconv.Itoa(src.Port), envURL+"="+rec.srv.URL,
		envCA+"="+caFile, envCheckpoint+"="+cpFile)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	rec.mu.Lock()
	rec.killAt = kc.killAt
	rec.kill = func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	}
	rec.mu.Unlock()
	select {
	case <-exited:
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		<-exited
		t.Fatalf("the worker neither finished nor was killed in 3 minutes:\n%s", out.String())
	}
	var ee *exec.ExitError
	require.True(t, errors.As(waitErr, &ee), "the worker ended on its own (%v):\n%s", waitErr, out.String())
	ws, _ := ee.Sys().(syscall.WaitStatus)
	require.Equal(t, syscall.SIGKILL, ws.Signal(), "killed by SIGKILL:\n%s", out.String())
	// The dead worker's requests the fake had whole are applied; the
	// resumed copy starts once they are.
	require.Eventually(t, func() bool { _, _, n := rec.state(); return n == 0 }, 10*time.Second, 10*time.Millisecond)
	rec.mu.Lock()
	killedWith := rec.killedWith
	rec.mu.Unlock()

	var last contract.Checkpoint
	if raw, err := os.ReadFile(cpFile); err == nil {
		require.NoError(t, json.Unmarshal(raw, &last))
	}
	_, history, _ := rec.state()
	from := kc.from(t, last, history)
	before := e.targetIdentities()
	complete, partial := 0, 0
	for id := range before {
		if strings.HasSuffix(id, "~partial") {
			partial++
		} else {
			complete++
		}
	}
	require.Positive(t, complete, "the worker created items before it died")
	require.Less(t, complete, len(want), "the worker died mid-copy")
	if kc.partial {
		require.Positive(t, partial, "a partial item left by the upload session cut short")
	} else {
		assert.GreaterOrEqual(t, killedWith, 2, "other requests in flight when the worker died")
	}

	// Another worker resumes.
	stats, err := viaGraph(t, src.Port, rec.srv.URL, e.graph.Client()).Copy(context.Background(),
		port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk, Checkpoint: from})
	require.NoError(t, err)

	// Every source message once, in its folder; nothing partial.
	after := e.targetIdentities()
	assert.Len(t, after, len(want), "as many identities as source messages")
	items := 0
	for id, folders := range after {
		items += len(folders)
		w, ok := want[id]
		if !assert.True(t, ok, "identity %s is a source message's", id) {
			continue
		}
		assert.Equal(t, []string{w.folder}, folders, "identity %s once, in its folder", id)
	}
	assert.Equal(t, len(want), items, "the target holds as many items as the source messages")

	// The resumed copy's figures add up with the checkpoint and with what
	// the dead worker had made.
	covered, found := 0, 0
	for id, w := range want {
		fc := from.Folders[w.name]
		switch {
		case fc.UIDValidity == w.uidValidity && w.uid <= fc.LastUID:
			covered++
			assert.Contains(t, before, id, "a message the checkpoint covers was there")
		case len(before[id]) > 0:
			found++
		}
	}
	assert.Equal(t, int64(len(want)-complete), stats.Items, "the resumed copy made what was not there")
	assert.Equal(t, int64(found), stats.Skipped, "and found the rest above the checkpoint")
	assert.Equal(t, int64(len(want)), int64(covered)+stats.Items+stats.Skipped)
	assert.Zero(t, stats.Duplicates, "no extra copy to remove")
	assert.Zero(t, stats.BadItems)

	// Over both workers, each identity completed once; every item removed
	// was a partial one.
	events, _, _ := rec.state()
	identityOf := map[string]string{}
	completed := map[string]int{}
	removedPartial := 0
	for _, ev := range events {
		switch ev.kind {
		case "create", "complete":
			identityOf[ev.item] = ev.identity
			if !strings.HasSuffix(ev.identity, "~partial") {
				completed[ev.identity]++
			}
		case "delete":
			id := identityOf[ev.item]
			assert.True(t, strings.HasSuffix(id, "~partial"), "item %s (%q) removed: only partial ones are", ev.item, id)
			removedPartial++
		}
	}
	assert.Len(t, completed, len(want))
	for id, n := range completed {
		assert.Equal(t, 1, n, "identity %s made once over both workers", id)
	}
	assert.Equal(t, partial, removedPartial, "the partial items the dead worker left are removed")
	st := e.graph.Stats()
	assert.Zero(t, st.Early)
	t.Logf("killed with %d requests in flight after %d items (%d partial); resumed from %d covered: %d made, %d found, %d partial removed; fake: %d requests, %d refused",
		killedWith, complete, partial, covered, stats.Items, stats.Skipped, removedPartial, st.Requests, len(st.Refused))
}

// sourceTarget is where a source message goes: its folder at the source
// and the target's folder path.
type sourceTarget struct {
	name        string
	uidValidity uint32
	uid         uint32
	folder      string
}

// displayNames are the well-known folders' names at the fake.
var displayNames = map[string]string{"inbox": "Inbox", "sentitems": "Sent Items", "drafts": "Drafts",
	"deleteditems": "Deleted Items", "junkemail": "Junk Email", "archive": "Archive"}

// sourceTargets lists the source's messages by identity, each with the
// target folder (a path of display names) the copier maps it to.
func sourceTargets(t *testing.T, sourcePort int) map[string]sourceTarget {
	t.Helper()
	src, err := sourceAt(t, sourcePort).Open(context.Background(), mailbox)
	require.NoError(t, err)
	defer src.Close()
	folders, err := src.Folders()
	require.NoError(t, err)
	out := map[string]sourceTarget{}
	for _, f := range folders {
		uv, msgs, err := src.Select(f.Name)
		require.NoError(t, err)
		to := strings.Join(f.Path, "/")
		if wk := graph.WellKnown(f.Name, f.SpecialUse); wk != "" {
			to = displayNames[wk]
		}
		for _, m := range msgs {
			out[fmt.Sprintf("%d.%d", uv, m.UID)] = sourceTarget{name: f.Name, uidValidity: uv, uid: m.UID, folder: to}
		}
	}
	return out
}

// targetIdentities lists the fake's items by the source identity they
// carry, each with the paths of the folders holding one.
func (e *env) targetIdentities() map[string][]string {
	folders := e.graph.Folders(upn)
	byID := map[string]*fakegraph.Folder{}
	for _, f := range folders {
		byID[f.ID] = f
	}
	var path func(f *fakegraph.Folder) string
	path = func(f *fakegraph.Folder) string {
		parent := byID[f.ParentID]
		if parent == nil || parent.WellKnown == "msgfolderroot" {
			return f.DisplayName
		}
		return path(parent) + "/" + f.DisplayName
	}
	out := map[string][]string{}
	for _, f := range folders {
		p := path(f)
		for _, m := range f.Messages {
			id := m.Props[strings.ToLower(graph.SourceProperty)]
			out[id] = append(out[id], p)
		}
	}
	return out
}
