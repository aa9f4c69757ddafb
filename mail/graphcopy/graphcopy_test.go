package graphcopy_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"mailwave/contract"
	"mailwave/mail/graph"
	"mailwave/mail/graphcopy"
	"mailwave/mail/imapcopy"
	"mailwave/mail/port"
	"mailwave/testkit/dovecot"
	"mailwave/testkit/fakegraph"
	"mailwave/testkit/imaptest"
)

const (
	user, password = "alice", "alice-pw"
	upn            = "alice@trust.nhs.example"
)

var mailbox = contract.MailboxRef{Key: "k-alice", Address: upn}

type env struct {
	src    *dovecot.Server
	graph  *fakegraph.Server
	copier *graphcopy.Copier
	reader *imapcopy.Reader
	client *graph.Client
}

// setup is a Dovecot source holding the standard account and a fake Graph
// target, with the copier between them.
func setup(t *testing.T) *env { return setupWith(t, fakegraph.Options{}) }

// setupWith is setup with the fake's options changed (its tenant,
// application and mailboxes are setup's).
func setupWith(t *testing.T, o fakegraph.Options) *env {
	t.Helper()
	return setupOn(t, startSource(t, dovecot.Options{}), o)
}

// startSource starts a Dovecot (so as given, with setup's user) holding
// the standard account.
func startSource(t *testing.T, so dovecot.Options) *dovecot.Server {
	t.Helper()
	so.Users, so.Plaintext = []dovecot.User{{Name: user, Password: password}}, true
	src := dovecot.StartT(t, so)
	cl, err := imaptest.Dial(src.Addr(), user, password)
	require.NoError(t, err)
	folders, msgs := imaptest.StandardSeed()
	require.NoError(t, imaptest.Seed(cl, msgs, folders))
	cl.Close()
	return src
}

// sourceAt reads the source at a port on loopback as setup's user.
func sourceAt(t *testing.T, port int) *imapcopy.Reader {
	t.Helper()
	reader, err := imapcopy.NewReader(imapcopy.Endpoint{Host: "127.0.0.1", Port: port, Security: imapcopy.SecurityNone},
		func(context.Context, imapcopy.Side, contract.MailboxRef) (imapcopy.Credentials, error) {
			return imapcopy.Credentials{Mechanism: imapcopy.MechPlain, Username: user, Password: password}, nil
		})
	require.NoError(t, err)
	return reader
}

// setupOn is setupWith on a source already started.
func setupOn(t *testing.T, src *dovecot.Server, o fakegraph.Options) *env {
	t.Helper()
	o.Tenant, o.ClientID, o.Secret, o.Mailboxes = "t", "app", "pw", []string{upn}
	g := fakegraph.Start(o)
	t.Cleanup(g.Close)
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, g.Client())
	tokens, err := graph.NewTokens(ctx).Source(graph.App{Tenant: "t", ClientID: "app", Secret: "pw", LoginURL: g.LoginURL()}, graph.ScopeGraph)
	require.NoError(t, err)
	budgets, err := graph.NewBudgets(graph.DefaultLimits)
	require.NoError(t, err)
	reader := sourceAt(t, src.Port)
	client := graph.NewClient(g.Client(), g.GraphURL(), tokens, budgets)
	c, err := graphcopy.New(graphcopy.Options{Source: reader, Graph: client})
	require.NoError(t, err)
	return &env{src: src, graph: g, copier: c, reader: reader, client: client}
}

// items counts the target's items by folder (well-known name, or display
// name) and by source identity.
func (e *env) items() (byFolder map[string]int, byIdentity map[string]int, all []*fakegraph.Message) {
	byFolder, byIdentity = map[string]int{}, map[string]int{}
	for _, f := range e.graph.Folders(upn) {
		name := f.WellKnown
		if name == "" {
			name = f.DisplayName
		}
		for _, m := range f.Messages {
			byFolder[name]++
			byIdentity[m.Props[strings.ToLower(graph.SourceProperty)]]++
			all = append(all, m)
		}
	}
	return byFolder, byIdentity, all
}

// TestTheStandardAccountIntoGraph: every folder and message of the
// standard account lands in Graph once, non-draft, with its dates, read
// state, flag and keywords, INBOX and the special-use folders in their
// well-known places, the 10 MB message's attachment through an upload
// session; a second pass creates nothing.
func TestTheStandardAccountIntoGraph(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	var cp contract.Checkpoint
	stats, err := e.copier.Copy(ctx, port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk,
		Progress: func(c contract.Checkpoint, _ contract.CopyStats) { cp = c }})
	require.NoError(t, err)
	_, msgs := imaptest.StandardSeed()
	assert.Equal(t, int64(len(msgs)), stats.Items)
	assert.Zero(t, stats.BadItems)

	byFolder, byIdentity, all := e.items()
	want := map[string]int{}
	for _, m := range msgs {
		want[m.Folder]++
	}
	assert.Equal(t, want["INBOX"], byFolder["inbox"])
	assert.Equal(t, want["Sent"], byFolder["sentitems"])
	assert.Equal(t, want["Drafts"], byFolder["drafts"])
	assert.Equal(t, want["Trash"], byFolder["deleteditems"])
	assert.Equal(t, want[imaptest.FolderArchive9], byFolder["2019"], "Archive/2019 under the archive's path")
	for id, n := range byIdentity {
		assert.Equal(t, 1, n, "identity %s once", id)
	}
	uploaded, flagged, read := 0, 0, 0
	for _, m := range all {
		assert.False(t, m.IsDraft, "created as non-draft")
		assert.NotEmpty(t, m.Props["systemtime 0x0e06"], "received date kept")
		uploaded += len(m.Uploaded)
		if f, ok := m.JSON["flag"].(map[string]any); ok && f["flagStatus"] == "flagged" {
			flagged++
		}
		if m.Props["integer 0x0e07"] == "1" {
			read++
		}
	}
	assert.Equal(t, 1, uploaded, "the large scan through an upload session")
	assert.Positive(t, flagged)
	assert.Positive(t, read)

	again, err := e.copier.Copy(ctx, port.CopyRequest{Mailbox: mailbox, Pass: contract.PassDelta, Checkpoint: contract.Checkpoint{}})
	require.NoError(t, err)
	assert.Zero(t, again.Items, "a re-run from nothing creates nothing")
	assert.Equal(t, int64(len(msgs)), again.Skipped)
	delta, err := e.copier.Copy(ctx, port.CopyRequest{Mailbox: mailbox, Pass: contract.PassDelta, Checkpoint: cp})
	require.NoError(t, err)
	assert.Zero(t, delta.Items+delta.Skipped, "the delta does not even look at what the checkpoint covers")
}

// TestAKilledCopyAndADuplicateMakeNothingTwice: a copy cancelled part way
// and resumed from its first checkpoint (its later heartbeats lost) adds
// nothing twice; an extra copy of an item (a request applied whose answer
// was lost) is removed by the verification.
func TestAKilledCopyAndADuplicateMakeNothingTwice(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	var first contract.Checkpoint
	reports := 0
	_, err := e.copier.Copy(ctx, port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk,
		Progress: func(c contract.Checkpoint, _ contract.CopyStats) {
			if reports++; reports == 1 {
				first = c
			}
			if reports == 4 {
				cancel()
			}
		}})
	require.Error(t, err, "cancelled mid-copy")
	_, before, _ := e.items()
	require.NotEmpty(t, before)

	stats, err := e.copier.Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk, Checkpoint: first})
	require.NoError(t, err)
	assert.Positive(t, stats.Skipped, "found what the lost checkpoints had copied")
	_, byIdentity, all := e.items()
	_, msgs := imaptest.StandardSeed()
	assert.Len(t, all, len(msgs))
	for id, n := range byIdentity {
		assert.Equal(t, 1, n, "identity %s once", id)
	}

	// A request applied twice: the same identity on two items.
	dup := all[0]
	require.NoError(t, e.graph.Duplicate(upn, dup.ID))
	stats, err = e.copier.Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassDelta})
	require.NoError(t, err)
	assert.Equal(t, int64(1), stats.Duplicates, "the extra copy is removed")
	_, _, all = e.items()
	assert.Len(t, all, len(msgs))
}

// TestACopyThroughExpiringTokensAndRefusals: tokens that live two seconds,
// each request taking 30 ms, and the service answering 503 (Retry-After
// 1 s) to five requests along the way: the copy ends exact, on renewed
// tokens, and no request came before a Retry-After.
func TestACopyThroughExpiringTokensAndRefusals(t *testing.T) {
	e := setupWith(t, fakegraph.Options{TokenTTL: 2 * time.Second, Latency: 30 * time.Millisecond})
	ctx := context.Background()
	e.graph.Fail503(2, time.Second)
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(1500 * time.Millisecond)
		e.graph.Fail503(3, time.Second)
	}()
	stats, err := e.copier.Copy(ctx, port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk})
	<-done
	require.NoError(t, err)
	_, msgs := imaptest.StandardSeed()
	assert.Equal(t, int64(len(msgs)), stats.Items)
	_, byIdentity, all := e.items()
	assert.Len(t, all, len(msgs))
	for id, n := range byIdentity {
		assert.Equal(t, 1, n, "identity %s once", id)
	}
	st := e.graph.Stats()
	assert.GreaterOrEqual(t, st.Refused["ServiceUnavailable"], 2)
	assert.Zero(t, st.Early, "no request before its Retry-After")
	assert.GreaterOrEqual(t, st.TokensIssued, 2, "tokens renewed during the copy")
}

// TestARevokedApplicationFailsTheMailboxForGood: the tenant revokes the
// application's secret: the copy fails with BadCredentials, naming the
// mailbox's key and no address.
func TestARevokedApplicationFailsTheMailboxForGood(t *testing.T) {
	e := setup(t)
	e.graph.RevokeSecret()
	_, err := e.copier.Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk})
	typ, permanent := port.IsPermanent(err)
	require.True(t, permanent, "%v", err)
	assert.Equal(t, contract.ErrTypeBadCredentials, typ)
	assert.NotContains(t, err.Error(), "@")

	// Revoked mid-copy, with messages in flight and the source's fetch
	// going: the copy fails with the application's refusal, not with the
	// cancellation it causes in the others.
	src := dovecot.StartT(t, dovecot.Options{Users: []dovecot.User{{Name: user, Password: password}}, Plaintext: true, Storage: dovecot.Maildir})
	_, _, err = imaptest.SeedMaildir(src, user, imaptest.BulkFolders([]string{"INBOX"}), imaptest.GenerateBulk(3, 300, 3<<20, []string{"INBOX"}))
	require.NoError(t, err)
	e = setupOn(t, src, fakegraph.Options{})
	var once sync.Once
	_, err = e.copier.Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk,
		Progress: func(contract.Checkpoint, contract.CopyStats) {
			once.Do(func() { e.graph.RevokeSecret(); e.graph.ExpireTokens() })
		}})
	typ, permanent = port.IsPermanent(err)
	require.True(t, permanent, "%v", err)
	assert.Equal(t, contract.ErrTypeBadCredentials, typ)
}

// TestAMessageOverTheTargetsLimitIsABadItem: the 10 MB scan against a
// limit of 5 MB is a bad item, named in the stats and never read; the rest
// is copied and verified, and the bad-item limit decides the mailbox.
func TestAMessageOverTheTargetsLimitIsABadItem(t *testing.T) {
	e := setup(t)
	c, err := graphcopy.New(graphcopy.Options{Source: e.reader, Graph: e.client, MaxMessageBytes: 5 << 20, BadItemLimit: 1})
	require.NoError(t, err)
	stats, err := c.Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk})
	require.NoError(t, err)
	_, msgs := imaptest.StandardSeed()
	assert.Equal(t, int64(1), stats.BadItems)
	require.Len(t, stats.Bad, 1)
	assert.Equal(t, "INBOX", stats.Bad[0].Folder)
	assert.Contains(t, stats.Bad[0].Reason, "over the target's 5242880-byte limit")
	assert.Equal(t, int64(len(msgs)-1), stats.Items)
	_, _, all := e.items()
	assert.Len(t, all, len(msgs)-1)

	strict, err := graphcopy.New(graphcopy.Options{Source: e.reader, Graph: e.client, MaxMessageBytes: 5 << 20})
	require.NoError(t, err)
	_, err = strict.Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassDelta})
	typ, permanent := port.IsPermanent(err)
	require.True(t, permanent, "%v", err)
	assert.Equal(t, contract.ErrTypeBadItems, typ)
}
