package route_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/mail/port"
	"mailwave/mail/route"
)

const token = "Bearer s3cret"

// request is what the test server saw.
type request struct {
	Method, Path, Query string
	Header              http.Header
	Body                []byte
}

// api is a scripted directory API: each request gets the next reply, the
// last one repeating.
type api struct {
	t       *testing.T
	mu      sync.Mutex
	replies []reply
	seen    []request
}

type reply struct {
	status int
	header map[string]string
	body   string
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	assert.NoError(a.t, err)
	a.mu.Lock()
	a.seen = append(a.seen, request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
	rep := a.replies[min(len(a.seen), len(a.replies))-1]
	a.mu.Unlock()
	for k, v := range rep.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(rep.status)
	_, _ = io.WriteString(w, rep.body)
}

func (a *api) requests() []request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]request(nil), a.seen...)
}

func serve(t *testing.T, replies ...reply) (*api, *httptest.Server) {
	a := &api{t: t, replies: replies}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return a, srv
}

func newWebhook(t *testing.T, o route.WebhookOptions) *route.Webhook {
	t.Helper()
	if o.Header == nil {
		o.Header = map[string]string{"Authorization": token}
	}
	if o.Backoff == 0 {
		o.Backoff = time.Millisecond
	}
	w, err := route.NewWebhook(o)
	require.NoError(t, err)
	return w
}

var jo = contract.MailboxRef{Key: "9f86d081", Address: "jo.bloggs@trust.nhs.example", Org: "Example NHS Trust", DisplayName: "Jo Bloggs"}

func TestWebhookCutoverSends(t *testing.T) {
	a, srv := serve(t, reply{status: http.StatusNoContent})
	w := newWebhook(t, route.WebhookOptions{URL: srv.URL + "/cutover"})
	require.NoError(t, w.Cutover(context.Background(), jo))

	seen := a.requests()
	require.Len(t, seen, 1)
	r := seen[0]
	assert.Equal(t, http.MethodPost, r.Method)
	assert.Equal(t, "/cutover", r.Path)
	assert.Equal(t, "mailwave-cutover-9f86d081", r.Header.Get("Idempotency-Key"))
	assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
	assert.Equal(t, token, r.Header.Get("Authorization"))
	var body map[string]string
	require.NoError(t, json.Unmarshal(r.Body, &body))
	assert.Equal(t, map[string]string{
		"mailbox_key": "9f86d081",
		"address":     "jo.bloggs@trust.nhs.example",
		"org":         "Example NHS Trust",
		"route":       "target",
	}, body)
}

func TestWebhookRetriesServerErrorsWithinTheCall(t *testing.T) {
	a, srv := serve(t, reply{status: 503}, reply{status: 503}, reply{status: 200})
	w := newWebhook(t, route.WebhookOptions{URL: srv.URL})
	require.NoError(t, w.Cutover(context.Background(), jo))
	seen := a.requests()
	require.Len(t, seen, 3)
	for _, r := range seen {
		assert.Equal(t, "mailwave-cutover-9f86d081", r.Header.Get("Idempotency-Key"), "the same key on every try")
		assert.Equal(t, seen[0].Body, r.Body)
	}
}

func TestWebhookGivesUpAfterAttempts(t *testing.T) {
	a, srv := serve(t, reply{status: 500, body: "database on fire for jo.bloggs@trust.nhs.example"})
	w := newWebhook(t, route.WebhookOptions{URL: srv.URL, Attempts: 4})
	err := w.Cutover(context.Background(), jo)
	require.Error(t, err)
	assert.Len(t, a.requests(), 4)
	_, permanent := port.IsPermanent(err)
	assert.False(t, permanent)
	var thr *port.ThrottledError
	assert.False(t, errors.As(err, &thr))
	assert.Contains(t, err.Error(), "500 Internal Server Error")
	assert.Contains(t, err.Error(), "9f86d081")
	assertNoAddress(t, err)
}

func TestWebhookNetworkErrorIsRetryable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	w := newWebhook(t, route.WebhookOptions{URL: url + "/cutover?token=abc"})
	err := w.Cutover(context.Background(), jo)
	require.Error(t, err)
	_, permanent := port.IsPermanent(err)
	assert.False(t, permanent)
	assert.Contains(t, err.Error(), "after 3 tries")
	assert.NotContains(t, err.Error(), "token=abc", "the URL is not quoted")
	assertNoAddress(t, err)
}

func TestWebhookClientErrorIsPermanent(t *testing.T) {
	for _, c := range []struct {
		name, body, want, notWant string
	}{
		{"body kept", `{"error":"unknown org"}`, `400 Bad Request {"error":"unknown org"}`, ""},
		{"body echoing the address dropped", `{"error":"no such user jo.bloggs@trust.nhs.example"}`, "400 Bad Request", "no such user"},
		{"encoded address dropped", `{"error":"no such user jo.bloggs%40trust.nhs.example"}`, "400 Bad Request", "no such user"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, srv := serve(t, reply{status: 400, body: c.body})
			w := newWebhook(t, route.WebhookOptions{URL: srv.URL})
			err := w.Cutover(context.Background(), jo)
			typ, ok := port.IsPermanent(err)
			require.True(t, ok, "%v", err)
			assert.Equal(t, contract.ErrTypeInvalidMailbox, typ)
			assert.Len(t, a.requests(), 1, "no retry")
			assert.Contains(t, err.Error(), "webhook refused mailbox 9f86d081: "+c.want)
			if c.notWant != "" {
				assert.NotContains(t, err.Error(), c.notWant)
			}
			assertNoAddress(t, err)
		})
	}
}

func TestWebhookLongBodyTruncated(t *testing.T) {
	long := make([]byte, 1000)
	for i := range long {
		long[i] = 'x'
	}
	_, srv := serve(t, reply{status: 422, body: string(long)})
	w := newWebhook(t, route.WebhookOptions{URL: srv.URL})
	err := w.Cutover(context.Background(), jo)
	require.Error(t, err)
	assert.Contains(t, err.Error(), string(long[:200]))
	assert.NotContains(t, err.Error(), string(long[:201]))
}

func TestWebhookThrottled(t *testing.T) {
	a, srv := serve(t, reply{status: 429, header: map[string]string{"Retry-After": "7"}})
	w := newWebhook(t, route.WebhookOptions{URL: srv.URL})
	err := w.Cutover(context.Background(), jo)
	var thr *port.ThrottledError
	require.ErrorAs(t, err, &thr)
	assert.Equal(t, 7*time.Second, thr.RetryAfter)
	assert.Len(t, a.requests(), 1, "the server's back-off is left to the retry policy")
	assertNoAddress(t, err)
}

func TestWebhookThrottledUntilDate(t *testing.T) {
	at := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	_, srv := serve(t, reply{status: 429, header: map[string]string{"Retry-After": at}})
	w := newWebhook(t, route.WebhookOptions{URL: srv.URL})
	var thr *port.ThrottledError
	require.ErrorAs(t, w.Cutover(context.Background(), jo), &thr)
	assert.InDelta(t, 90, thr.RetryAfter.Seconds(), 2)
}

func TestWebhookConflictMeansDone(t *testing.T) {
	a, srv := serve(t, reply{status: http.StatusConflict, body: `{"error":"already routed"}`})
	w := newWebhook(t, route.WebhookOptions{URL: srv.URL})
	require.NoError(t, w.Cutover(context.Background(), jo))
	assert.Len(t, a.requests(), 1)
}

func TestWebhookCancelStopsBackoff(t *testing.T) {
	a, srv := serve(t, reply{status: 503})
	w := newWebhook(t, route.WebhookOptions{URL: srv.URL, Backoff: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	err := w.Cutover(ctx, jo)
	require.ErrorIs(t, err, context.Canceled)
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Len(t, a.requests(), 1)
	assertNoAddress(t, err)
}

func TestWebhookRouteAsksStatusURL(t *testing.T) {
	var mu sync.Mutex
	var seen []request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone()})
		mu.Unlock()
		switch r.URL.Query().Get("mailbox_key") {
		case "k-target":
			_, _ = io.WriteString(w, `{"route":"target"}`)
		case "k-source":
			_, _ = io.WriteString(w, `{"route":"source"}`)
		case "k-unknown":
			http.NotFound(w, r)
		case "k-odd":
			_, _ = io.WriteString(w, `{"route":"elsewhere"}`)
		case "k-refused":
			http.Error(w, "no such mailbox", http.StatusForbidden)
		default:
			http.Error(w, "bad", http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)
	w := newWebhook(t, route.WebhookOptions{URL: srv.URL + "/cutover", StatusURL: srv.URL + "/status?tenant=nhs"})
	ctx := context.Background()
	for key, want := range map[string]port.Route{
		"k-target": port.RouteTarget, "k-source": port.RouteSource, "k-unknown": port.RouteSource,
	} {
		got, err := w.Route(ctx, contract.MailboxRef{Key: key, Address: "x@y.example"})
		require.NoError(t, err, key)
		assert.Equal(t, want, got, key)
	}
	_, err := w.Route(ctx, contract.MailboxRef{Key: "k-odd", Address: "x@y.example"})
	require.Error(t, err)
	_, err = w.Route(ctx, contract.MailboxRef{Key: "k-refused", Address: "x@y.example"})
	typ, ok := port.IsPermanent(err)
	assert.True(t, ok)
	assert.Equal(t, contract.ErrTypeInvalidMailbox, typ)

	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, seen)
	r := seen[0]
	assert.Equal(t, http.MethodGet, r.Method)
	assert.Equal(t, "/status", r.Path)
	assert.Contains(t, r.Query, "tenant=nhs")
	assert.Contains(t, r.Query, "mailbox_key=k-")
	assert.Equal(t, token, r.Header.Get("Authorization"))
	for _, r := range seen {
		assert.NotContains(t, r.Query, "y.example", "the address is not sent to the status URL")
	}
}

func TestWebhookRouteWithoutStatusURL(t *testing.T) {
	a, srv := serve(t, reply{status: 200})
	w := newWebhook(t, route.WebhookOptions{URL: srv.URL})
	got, err := w.Route(context.Background(), jo)
	require.NoError(t, err)
	assert.Equal(t, port.RouteSource, got)
	assert.Empty(t, a.requests())
}

func TestNewWebhookRejectsBadOptions(t *testing.T) {
	for _, c := range []struct {
		name   string
		o      route.WebhookOptions
		option string
	}{
		{"no URL", route.WebhookOptions{}, "URL"},
		{"relative URL", route.WebhookOptions{URL: "/cutover"}, "URL"},
		{"other scheme", route.WebhookOptions{URL: "ftp://api.example/cutover"}, "URL"},
		{"no host", route.WebhookOptions{URL: "https:///cutover"}, "URL"},
		{"bad status URL", route.WebhookOptions{URL: "https://api.example/", StatusURL: "api.example/status"}, "StatusURL"},
		{"bad header name", route.WebhookOptions{URL: "https://api.example/", Header: map[string]string{"Bad Name": "x"}}, "Header"},
		{"header value with a line break", route.WebhookOptions{URL: "https://api.example/", Header: map[string]string{"Authorization": "Bearer x\r\nEvil: y"}}, "Header"},
		{"negative attempts", route.WebhookOptions{URL: "https://api.example/", Attempts: -1}, "Attempts"},
		{"negative back-off", route.WebhookOptions{URL: "https://api.example/", Backoff: -time.Second}, "Backoff"},
		{"negative timeout", route.WebhookOptions{URL: "https://api.example/", Timeout: -time.Second}, "Timeout"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := route.NewWebhook(c.o)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "WebhookOptions."+c.option)
			assert.NotContains(t, err.Error(), "Bearer")
		})
	}
}

func TestWebhookPerRequestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	w := newWebhook(t, route.WebhookOptions{URL: srv.URL, Timeout: 50 * time.Millisecond, Attempts: 2})
	start := time.Now()
	err := w.Cutover(context.Background(), jo)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "after 2 tries")
	assert.False(t, errors.Is(err, context.DeadlineExceeded), "a slow request is an ordinary retryable failure")
	assert.Less(t, time.Since(start), 5*time.Second)
}

func TestWebhookFollowsNoRedirect(t *testing.T) {
	elsewhere, other := serve(t, reply{status: http.StatusNoContent})
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			a, srv := serve(t, reply{status: status, header: map[string]string{"Location": other.URL + "/cutover?to=jo.bloggs@trust.nhs.example"}})
			// A caller's client that would follow redirects is tamed too.
			w := newWebhook(t, route.WebhookOptions{URL: srv.URL, StatusURL: srv.URL + "/status", Client: &http.Client{}})

			err := w.Cutover(context.Background(), jo)
			typ, ok := port.IsPermanent(err)
			require.True(t, ok, "%v", err)
			assert.Equal(t, contract.ErrTypeInvalidMailbox, typ)
			assert.Contains(t, err.Error(), statusText(status))
			assert.Contains(t, err.Error(), "redirect")
			assert.NotContains(t, err.Error(), other.URL, "the Location is not quoted")
			assertNoAddress(t, err)

			_, err = w.Route(context.Background(), jo)
			_, ok = port.IsPermanent(err)
			require.True(t, ok, "%v", err)
			assert.Contains(t, err.Error(), statusText(status))

			assert.Len(t, a.requests(), 2, "one try each, no retry")
			assert.Empty(t, elsewhere.requests(), "the redirect is not followed")
		})
	}
}

func statusText(code int) string { return fmt.Sprintf("%d %s", code, http.StatusText(code)) }

func TestNewWebhookSendsHeadersOnlyOverHTTPSOrLoopback(t *testing.T) {
	secret := map[string]string{"Authorization": token}
	for _, c := range []struct {
		name      string
		o         route.WebhookOptions
		refusedIn string // the option named in the error; "" if accepted
	}{
		{"https", route.WebhookOptions{URL: "https://api.example/cutover", StatusURL: "https://api.example/status", Header: secret}, ""},
		{"http to 127.0.0.1", route.WebhookOptions{URL: "http://127.0.0.1:8080/cutover", Header: secret}, ""},
		{"http to 127.1.2.3", route.WebhookOptions{URL: "http://127.1.2.3/cutover", Header: secret}, ""},
		{"http to ::1", route.WebhookOptions{URL: "http://[::1]:8080/cutover", Header: secret}, ""},
		{"http to localhost", route.WebhookOptions{URL: "http://LocalHost:8080/cutover", Header: secret}, ""},
		{"http without headers", route.WebhookOptions{URL: "http://api.example/cutover", Header: map[string]string{}}, ""},
		{"http to a name", route.WebhookOptions{URL: "http://api.example/cutover?token=abc", Header: secret}, "URL"},
		{"http to an address", route.WebhookOptions{URL: "http://10.0.0.7/cutover", Header: secret}, "URL"},
		{"http to a name ending in localhost", route.WebhookOptions{URL: "http://localhost.evil.example/", Header: secret}, "URL"},
		{"http status URL", route.WebhookOptions{URL: "https://api.example/cutover", StatusURL: "http://api.example/status?token=abc", Header: secret}, "StatusURL"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := route.NewWebhook(c.o)
			if c.refusedIn == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), "WebhookOptions."+c.refusedIn+" is plain http")
			assert.Contains(t, err.Error(), "https")
			assert.NotContains(t, err.Error(), "Bearer")
			assert.NotContains(t, err.Error(), "token=abc")
		})
	}
}
