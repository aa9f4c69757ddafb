package codecserver_test

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"mailwave/codec"
	"mailwave/codec/codecserver"
	"mailwave/internal/accesstoken"
	"mailwave/testkit"
)

const (
	ui      = "http://localhost:8233"
	address = "alice.smith@trust.nhs.example"
	wfID    = "mailbox-k1"
)

// clock is the server's clock, moved by the tests.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fixture is a codec server with its signing key, revocation list, audit
// file and clock.
type fixture struct {
	t           *testing.T
	srv         *httptest.Server
	dc          converter.DataConverter
	key         ed25519.PrivateKey
	revocations string
	auditPath   string
	audit       *codecserver.Audit
	clock       *clock
}

func start(t *testing.T, maxSession time.Duration) *fixture {
	t.Helper()
	dir := t.TempDir()
	key, err := accesstoken.NewKey()
	require.NoError(t, err)
	f := &fixture{t: t, key: key, revocations: filepath.Join(dir, "revoked"), auditPath: filepath.Join(dir, "audit.jsonl"),
		clock: &clock{now: time.Now().Truncate(time.Second)}}
	f.audit, err = codecserver.OpenAudit(f.auditPath)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.audit.Close() })
	keys := testkit.TestKeyRing()
	h, err := codecserver.New(codecserver.Options{
		Codec: codec.New(keys).AcceptingPlain(), Namespaces: []string{"default"}, Origins: []string{ui},
		Verifier: accesstoken.NewVerifier(key.Public().(ed25519.PublicKey), f.revocations),
		Audit:    f.audit, MaxSession: maxSession, Now: f.clock.Now,
	})
	require.NoError(t, err)
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	f.dc = codec.DataConverter(keys)
	return f
}

// token issues an access token for who, valid 8 hours from the server's now.
func (f *fixture) token(who, ns string, roles ...accesstoken.Role) string {
	f.t.Helper()
	now := f.clock.Now()
	tok, err := accesstoken.Issue(f.key, accesstoken.Claims{Subject: who, Roles: roles, Namespace: ns, IssuedAt: now, Expires: now.Add(8 * time.Hour)})
	require.NoError(f.t, err)
	return tok
}

// sealed is what a worker wrote to a mailbox workflow's history: its
// input, encrypted, stamped with the workflow's ID.
func (f *fixture) sealed() []byte {
	f.t.Helper()
	dc := converter.WithDataConverterSerializationContext(f.dc, converter.WorkflowSerializationContext{Namespace: "default", WorkflowID: wfID})
	p, err := dc.ToPayloads(map[string]string{"Address": address}, "Alice Smith")
	require.NoError(f.t, err)
	b, err := protojson.Marshal(p)
	require.NoError(f.t, err)
	assert.NotContains(f.t, string(b), "alice")
	return b
}

func (f *fixture) post(c *http.Client, path string, body []byte, header map[string]string) (*http.Response, string) {
	f.t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.srv.URL+path, bytes.NewReader(body))
	require.NoError(f.t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	require.NoError(f.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(f.t, err)
	return resp, string(b)
}

// records reads the audit file.
func (f *fixture) records() []codecserver.Record {
	f.t.Helper()
	b, err := os.ReadFile(f.auditPath)
	require.NoError(f.t, err)
	var out []codecserver.Record
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var r codecserver.Record
		require.NoError(f.t, json.Unmarshal(sc.Bytes(), &r), sc.Text())
		out = append(out, r)
	}
	return out
}

func (f *fixture) noPlaintextInAudit() {
	f.t.Helper()
	b, err := os.ReadFile(f.auditPath)
	require.NoError(f.t, err)
	for _, s := range []string{"alice.smith", "Alice Smith", "trust.nhs"} {
		assert.NotContains(f.t, string(b), s, "the audit file holds payload text")
	}
}

func decoded(t *testing.T, body string) map[string]string {
	t.Helper()
	var payloads commonpb.Payloads
	require.NoError(t, protojson.Unmarshal([]byte(body), &payloads))
	var got map[string]string
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(payloads.Payloads[0], &got))
	return got
}

func bearer(tok string) map[string]string {
	return map[string]string{"X-Namespace": "default", "Authorization": "Bearer " + tok}
}

// A person's decoder token, sent as a bearer token (the CLI's
// --codec-auth), decodes; the decode is one audit record naming the person,
// the workflow and the number of payloads, and no payload text. No token,
// a forged one, one without the decoder role, or one for another namespace
// decodes nothing.
func TestDecodeWithAPersonsToken(t *testing.T) {
	f := start(t, 0)
	body := f.sealed()
	alice := f.token("alice", "default", accesstoken.Decoder)

	resp, out := f.post(http.DefaultClient, "/decode", body, bearer(alice))
	require.Equal(t, http.StatusOK, resp.StatusCode, out)
	assert.Equal(t, address, decoded(t, out)["Address"])
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	recs := f.records()
	require.Len(t, recs, 1, "one decode, one record")
	r := recs[0]
	assert.Equal(t, "decode", r.Event)
	assert.Equal(t, "alice", r.Subject)
	assert.Equal(t, "bearer", r.Via)
	assert.Equal(t, "default", r.Namespace)
	assert.Equal(t, []string{wfID}, r.Workflows)
	assert.Equal(t, 2, r.Payloads)
	assert.Equal(t, "ok", r.Outcome)
	assert.NotEmpty(t, r.TokenID)
	assert.WithinDuration(t, f.clock.Now(), r.Time, time.Second)
	f.noPlaintextInAudit()
	assert.NotContains(t, string(must(os.ReadFile(f.auditPath))), alice, "no token in the audit file")

	other, err := accesstoken.NewKey()
	require.NoError(t, err)
	now := f.clock.Now()
	forged, err := accesstoken.Issue(other, accesstoken.Claims{Subject: "alice", Roles: []accesstoken.Role{accesstoken.Decoder},
		Namespace: "default", IssuedAt: now, Expires: now.Add(time.Hour)})
	require.NoError(t, err)
	for name, h := range map[string]map[string]string{
		"no token":       {"X-Namespace": "default"},
		"not a token":    bearer("not-a-token-at-all"),
		"another key's":  bearer(forged),
		"not bearer":     {"X-Namespace": "default", "Authorization": "Basic " + alice},
		"viewer only":    bearer(f.token("bob", "default", accesstoken.Viewer)),
		"operator only":  bearer(f.token("bob", "default", accesstoken.Operator)),
		"for another ns": bearer(f.token("bob", "other", accesstoken.Decoder)),
	} {
		resp, out := f.post(http.DefaultClient, "/decode", body, h)
		assert.Contains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, resp.StatusCode, name)
		assert.NotContains(t, out, "alice.smith", name)
	}
	recs = f.records()
	var decodes, refusedBob int
	for _, r := range recs {
		if r.Event == "decode" {
			decodes++
		}
		if r.Event == "refused" && r.Subject == "bob" {
			refusedBob++
			assert.Equal(t, "refused", r.Outcome)
		}
	}
	assert.Equal(t, 1, decodes, "refused requests decode nothing")
	assert.Equal(t, 3, refusedBob, "a named person's refusals are recorded; a forged token names nobody")

	// Namespaces: by header or path; another namespace is refused; the
	// Temporal CLI's empty X-Namespace is the one namespace served.
	resp, _ = f.post(http.DefaultClient, "/default/decode", body, map[string]string{"Authorization": "Bearer " + alice})
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	resp, out = f.post(http.DefaultClient, "/decode", body, map[string]string{"X-Namespace": "other", "Authorization": "Bearer " + alice})
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.NotContains(t, out, "alice.smith")
	resp, _ = f.post(http.DefaultClient, "/decode", body, map[string]string{"X-Namespace": "", "Authorization": "Bearer " + alice})
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

// Encoding makes payloads the workers accept: it needs the operator role
// besides decoder, and is recorded.
func TestEncodeNeedsAnOperator(t *testing.T) {
	f := start(t, 0)
	plain, err := converter.GetDefaultDataConverter().ToPayloads("bob@trust.nhs.example")
	require.NoError(t, err)
	pb, err := protojson.Marshal(plain)
	require.NoError(t, err)
	resp, _ := f.post(http.DefaultClient, "/encode", pb, bearer(f.token("alice", "default", accesstoken.Decoder)))
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp, out := f.post(http.DefaultClient, "/encode", pb, bearer(f.token("olga", "default", accesstoken.Decoder, accesstoken.Operator)))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.NotContains(t, out, "bob")
	assert.Contains(t, out, `"encryption-key-id":"dGVzdC0x"`, "sealed with key test-1")
	recs := f.records()
	require.Len(t, recs, 2)
	assert.Equal(t, "refused", recs[0].Event)
	assert.Equal(t, "encode: no operator role", recs[0].Reason)
	assert.Equal(t, "encode", recs[1].Event)
	assert.Equal(t, "olga", recs[1].Subject)
	assert.Equal(t, 1, recs[1].Plain)
}

// A browser signs in with a person's token and gets a session: a random ID
// in an HttpOnly, SameSite=Strict cookie (not the token). Its decodes are
// recorded in that person's name. A token without the decoder role cannot
// sign in. The session ends at its maximum age, at sign-out, and at once
// when the person is revoked (starter access revoke): each is refused.
func TestBrowserSession(t *testing.T) {
	f := start(t, time.Hour)
	body := f.sealed()
	signIn := func(tok string) (*http.Client, *http.Response, string) {
		jar, err := cookiejar.New(nil)
		require.NoError(t, err)
		c := &http.Client{Jar: jar}
		resp, err := c.PostForm(f.srv.URL+"/login", url.Values{"token": {tok}})
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return c, resp, string(b)
	}
	decode := func(c *http.Client) (*http.Response, string) {
		return f.post(c, "/decode", body, map[string]string{"X-Namespace": "default"})
	}

	// No session.
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	resp, out := decode(&http.Client{Jar: jar})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.NotContains(t, out, "alice.smith")

	// No decoder role: no session.
	c, resp, _ := signIn(f.token("vic", "default", accesstoken.Viewer))
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Empty(t, resp.Header.Get("Set-Cookie"))
	resp, _ = decode(c)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	_, resp, _ = signIn("guess-guess-guess")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	// A sign-in form posted from another site's page is refused.
	req, err := http.NewRequest(http.MethodPost, f.srv.URL+"/login",
		strings.NewReader(url.Values{"token": {f.token("alice", "default", accesstoken.Decoder)}}.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Empty(t, resp.Header.Get("Set-Cookie"))

	// Signed in.
	alice := f.token("alice", "default", accesstoken.Decoder)
	req, err = http.NewRequest(http.MethodPost, f.srv.URL+"/login", strings.NewReader(url.Values{"token": {alice}}.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", f.srv.URL)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "posted from the codec server's own page")
	c, resp, page := signIn(alice)
	require.Equal(t, http.StatusOK, resp.StatusCode, page)
	assert.Contains(t, page, "Signed in as alice")
	setCookie := resp.Header.Get("Set-Cookie")
	assert.Contains(t, setCookie, codecserver.CookieName+"=")
	assert.Contains(t, setCookie, "HttpOnly")
	assert.Contains(t, setCookie, "SameSite=Strict")
	assert.Contains(t, setCookie, "Max-Age=3600", "the session's maximum, sooner than the token's expiry")
	assert.NotContains(t, setCookie, alice, "the cookie holds a session ID, not the token")
	resp, out = decode(c)
	require.Equal(t, http.StatusOK, resp.StatusCode, out)
	assert.Equal(t, address, decoded(t, out)["Address"])

	// Expired: past the session's maximum age, even with the token still good.
	f.clock.Add(time.Hour)
	resp, out = decode(c)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, out, "session expired")
	resp, _ = decode(c)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "and stays refused")

	// Revoked: the next request after the revocation list changes (the
	// verifier looks at the file at most once a second).
	c, resp, _ = signIn(f.token("alice", "default", accesstoken.Decoder))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = decode(c)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, accesstoken.Revoke(f.revocations, "alice", f.clock.Now()))
	time.Sleep(1100 * time.Millisecond)
	resp, out = decode(c)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, out, "revoked")
	assert.NotContains(t, out, "alice.smith")
	_, resp, _ = signIn(alice)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "nor can the revoked token sign in again")

	// A token issued after the revocation signs in; signing out ends it.
	f.clock.Add(time.Second)
	c, resp, _ = signIn(f.token("alice", "default", accesstoken.Decoder))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, err = c.PostForm(f.srv.URL+"/logout", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = decode(c)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	// The record: every sign-in, decode, refusal of a named person and
	// sign-out, in order; two decodes, both alice's, of workflow wfID.
	var events []string
	decodes := 0
	for _, r := range f.records() {
		events = append(events, r.Event+" "+r.Subject+" "+r.Outcome+" "+r.Reason)
		if r.Event == "decode" {
			decodes++
			assert.Equal(t, "alice", r.Subject)
			assert.Equal(t, "session", r.Via)
			assert.Equal(t, []string{wfID}, r.Workflows)
		}
	}
	assert.Equal(t, []string{
		"sign-in vic refused no decoder role",
		"sign-in alice ok ", // posted from its own page
		"sign-in alice ok ",
		"decode alice ok ",
		"refused alice refused decode: session expired",
		"sign-in alice ok ",
		"decode alice ok ",
		"refused alice refused decode: token revoked",
		"sign-in alice refused token revoked",
		"sign-in alice ok ",
		"sign-out alice ok ",
	}, events)
	assert.Equal(t, 2, decodes)
	f.noPlaintextInAudit()
}

// No audit record, no decode: if the audit file cannot be written, the
// request is refused and nothing decoded leaves.
func TestNoRecordNoDecode(t *testing.T) {
	f := start(t, 0)
	require.NoError(t, f.audit.Close())
	resp, out := f.post(http.DefaultClient, "/decode", f.sealed(), bearer(f.token("alice", "default", accesstoken.Decoder)))
	assert.NotEqual(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, out, "audit record could not be written")
	assert.NotContains(t, out, "alice.smith")
}

// The audit file is private: created 0600, an existing one readable by
// others or a symbolic link is refused. It is appended to, and reopened
// after it is moved away (SIGHUP to the codec server).
func TestAuditFileIsPrivate(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "audit.jsonl")
	a, err := codecserver.OpenAudit(p)
	require.NoError(t, err)
	require.NoError(t, a.Write(codecserver.Record{Event: "decode", Outcome: "ok"}))
	require.NoError(t, a.Close())
	st, err := os.Stat(p)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	a, err = codecserver.OpenAudit(p)
	require.NoError(t, err)
	require.NoError(t, a.Write(codecserver.Record{Event: "decode", Outcome: "ok"}))
	require.NoError(t, a.Close())
	assert.Equal(t, 2, strings.Count(string(must(os.ReadFile(p))), "\n"), "appended, not truncated")

	// Archived (moved away), then reopened: records go to a new file.
	a, err = codecserver.OpenAudit(p)
	require.NoError(t, err)
	require.NoError(t, os.Rename(p, p+".1"))
	require.NoError(t, a.Write(codecserver.Record{Event: "decode", Outcome: "ok"}))
	require.NoError(t, a.Reopen())
	require.NoError(t, a.Write(codecserver.Record{Event: "sign-in", Outcome: "ok"}))
	require.NoError(t, a.Close())
	assert.Equal(t, 3, strings.Count(string(must(os.ReadFile(p+".1"))), "\n"), "written to until reopened")
	assert.Equal(t, 1, strings.Count(string(must(os.ReadFile(p))), "\n"))
	st, err = os.Stat(p)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	require.NoError(t, os.Chmod(p, 0o644))
	_, err = codecserver.OpenAudit(p)
	assert.ErrorContains(t, err, "group and others must have no access")
	require.NoError(t, os.Chmod(p, 0o600))
	link := filepath.Join(dir, "link")
	require.NoError(t, os.Symlink(p, link))
	_, err = codecserver.OpenAudit(link)
	assert.ErrorContains(t, err, "symbolic link")
}

// CORS: the UI's origin may call with credentials, and its preflight is
// answered without a token; another origin gets no CORS grant.
func TestCORS(t *testing.T) {
	f := start(t, 0)
	pre := func(origin string) *http.Response {
		req, err := http.NewRequest(http.MethodOptions, f.srv.URL+"/decode", nil)
		require.NoError(t, err)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type,x-namespace")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	resp := pre(ui)
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Equal(t, ui, resp.Header.Get("Access-Control-Allow-Origin"))
	assert.Equal(t, "true", resp.Header.Get("Access-Control-Allow-Credentials"))
	assert.True(t, strings.Contains(strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")), "x-namespace"))

	resp = pre("https://evil.example")
	assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
}

// A server that would decode for anyone, or without a record, is not built.
func TestNeedsVerifierAndAudit(t *testing.T) {
	key, err := accesstoken.NewKey()
	require.NoError(t, err)
	v := accesstoken.NewVerifier(key.Public().(ed25519.PublicKey), "")
	a, err := codecserver.OpenAudit(filepath.Join(t.TempDir(), "audit"))
	require.NoError(t, err)
	defer a.Close()
	c := codec.New(testkit.TestKeyRing())
	_, err = codecserver.New(codecserver.Options{Codec: c, Namespaces: []string{"default"}, Audit: a})
	assert.ErrorContains(t, err, "no token verifier")
	_, err = codecserver.New(codecserver.Options{Codec: c, Namespaces: []string{"default"}, Verifier: v})
	assert.ErrorContains(t, err, "no audit file")
	_, err = codecserver.New(codecserver.Options{Codec: c, Namespaces: []string{"default"}, Verifier: v, Audit: a, SameSite: http.SameSiteNoneMode})
	assert.ErrorContains(t, err, "needs HTTPS")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
