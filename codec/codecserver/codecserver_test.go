package codecserver_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"mailwave/codec"
	"mailwave/codec/codecserver"
	"mailwave/testkit"
)

const (
	token = "codec-test-token-0123456789"
	ui    = "http://localhost:8233"
)

func start(t *testing.T) (*httptest.Server, converter.DataConverter) {
	t.Helper()
	keys := testkit.TestKeyRing()
	h, err := codecserver.New(codecserver.Options{
		Codec: codec.New(keys), Namespaces: []string{"default"}, Origins: []string{ui}, Tokens: []string{token},
	})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, codec.DataConverter(keys)
}

// sealed is what a worker wrote to history: a mailbox's input, encrypted.
func sealed(t *testing.T, dc converter.DataConverter) []byte {
	p, err := dc.ToPayloads(map[string]string{"Address": "alice.smith@trust.nhs.example"})
	require.NoError(t, err)
	b, err := protojson.Marshal(p)
	require.NoError(t, err)
	assert.NotContains(t, string(b), "alice")
	return b
}

func post(t *testing.T, c *http.Client, url string, body []byte, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

// With the token, /decode gives the plain payload back; without it, or with
// another, nothing is decoded.
func TestDecodeNeedsTheToken(t *testing.T) {
	srv, dc := start(t)
	body := sealed(t, dc)

	resp, out := post(t, http.DefaultClient, srv.URL+"/decode", body, map[string]string{"X-Namespace": "default", "Authorization": "Bearer " + token})
	require.Equal(t, http.StatusOK, resp.StatusCode, out)
	var payloads commonpb.Payloads
	require.NoError(t, protojson.Unmarshal([]byte(out), &payloads))
	var got map[string]string
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(payloads.Payloads[0], &got))
	assert.Equal(t, "alice.smith@trust.nhs.example", got["Address"])

	for name, h := range map[string]map[string]string{
		"no token":    {"X-Namespace": "default"},
		"wrong token": {"X-Namespace": "default", "Authorization": "Bearer not-the-token-at-all"},
		"not bearer":  {"X-Namespace": "default", "Authorization": "Basic " + token},
	} {
		resp, out := post(t, http.DefaultClient, srv.URL+"/decode", body, h)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, name)
		assert.NotContains(t, out, "alice", name)
	}

	// Namespaces: by header or path; another namespace is refused.
	resp, _ = post(t, http.DefaultClient, srv.URL+"/default/decode", body, map[string]string{"Authorization": "Bearer " + token})
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	resp, out = post(t, http.DefaultClient, srv.URL+"/decode", body, map[string]string{"X-Namespace": "other", "Authorization": "Bearer " + token})
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.NotContains(t, out, "alice")

	// The Temporal CLI sends an empty X-Namespace: the one namespace served.
	resp, _ = post(t, http.DefaultClient, srv.URL+"/decode", body, map[string]string{"X-Namespace": "", "Authorization": "Bearer " + token})
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	// /encode seals.
	plain, err := converter.GetDefaultDataConverter().ToPayloads("bob@trust.nhs.example")
	require.NoError(t, err)
	pb, err := protojson.Marshal(plain)
	require.NoError(t, err)
	resp, out = post(t, http.DefaultClient, srv.URL+"/encode", pb, map[string]string{"X-Namespace": "default", "Authorization": "Bearer " + token})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.NotContains(t, out, "bob")
	assert.Contains(t, out, `"encryption-key-id":"dGVzdC0x"`, "sealed with key test-1")
}

// A browser signs in once at /login; its cookie then authorizes the UI's
// requests. A wrong token sets no cookie.
func TestBrowserSignIn(t *testing.T) {
	srv, dc := start(t)
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	c := &http.Client{Jar: jar}

	resp, err := c.PostForm(srv.URL+"/login", url.Values{"token": {"guess-guess-guess-guess"}})
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, _ = post(t, c, srv.URL+"/decode", sealed(t, dc), map[string]string{"X-Namespace": "default"})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	resp, err = c.PostForm(srv.URL+"/login", url.Values{"token": {token}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	setCookie := resp.Header.Get("Set-Cookie")
	assert.Contains(t, setCookie, "HttpOnly")
	assert.Contains(t, setCookie, "SameSite=Strict")
	resp, out := post(t, c, srv.URL+"/decode", sealed(t, dc), map[string]string{"X-Namespace": "default"})
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, out, "payloads")
}

// CORS: the UI's origin may call with credentials, and its preflight is
// answered without a token; another origin gets no CORS grant.
func TestCORS(t *testing.T) {
	srv, _ := start(t)
	pre := func(origin string) *http.Response {
		req, err := http.NewRequest(http.MethodOptions, srv.URL+"/decode", nil)
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

// A server that would accept anyone is not built.
func TestNeedsTokens(t *testing.T) {
	_, err := codecserver.New(codecserver.Options{Codec: codec.New(testkit.TestKeyRing()), Namespaces: []string{"default"}})
	assert.ErrorContains(t, err, "no token")
	_, err = codecserver.New(codecserver.Options{Codec: codec.New(testkit.TestKeyRing()), Namespaces: []string{"default"}, Tokens: []string{"short"}})
	assert.ErrorContains(t, err, "16 or more")
}
