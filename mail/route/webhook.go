package route

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"mailwave/contract"
	"mailwave/mail/port"
)

// Defaults of WebhookOptions.
const (
	DefaultWebhookAttempts = 3
	DefaultWebhookBackoff  = 500 * time.Millisecond
	DefaultWebhookTimeout  = 30 * time.Second
)

// maxBody is how much of a response is read: enough for a status answer
// or an error message.
const maxBody = 64 << 10

// WebhookOptions configures a Webhook.
type WebhookOptions struct {
	// URL receives the cutover POST.
	URL string
	// StatusURL, if set, answers GET ?mailbox_key=<key> with
	// {"route":"target"|"source"}; 404 means the source.
	StatusURL string
	// Header is added to every request, e.g. Authorization: Bearer <token>,
	// already resolved. Its values are taken for secrets: with a Header,
	// URL and StatusURL must be https, or http to a loopback host
	// (127.0.0.0/8, ::1, localhost).
	Header map[string]string
	// Client makes the requests; a plain http.Client if nil. Either way
	// the Webhook uses a copy that follows no redirect.
	Client *http.Client
	// Attempts is how many times one call tries after a 5xx, a 408 or a
	// network error; DefaultWebhookAttempts if zero.
	Attempts int
	// Backoff is the first wait between those tries, doubling after each;
	// DefaultWebhookBackoff if zero.
	Backoff time.Duration
	// Timeout bounds each request, reading the response included;
	// DefaultWebhookTimeout if zero.
	Timeout time.Duration
}

// Webhook is an port.Router over a directory's HTTP API.
//
// Cutover POSTs {"mailbox_key", "address", "org", "route": "target"} with
// the header Idempotency-Key: mailwave-cutover-<key>, the same on every
// try and every retry of the activity, so that the API can recognise a
// repeat. A 2xx is success, and so is 409 Conflict, which the API uses to
// say the mailbox is already routed to the target.
//
// Route asks StatusURL when there is one. Without it Route always reports
// the source, so every cutover activity POSTs; the idempotency key keeps a
// repeat harmless.
//
// A redirect is never followed: a 3xx answer is a permanent error naming
// the status, so that the headers (a token) and the address go nowhere but
// the configured URL.
type Webhook struct {
	url       *url.URL
	statusURL *url.URL
	header    http.Header
	client    *http.Client
	attempts  int
	backoff   time.Duration
	timeout   time.Duration
}

var _ port.Router = (*Webhook)(nil)

// NewWebhook checks the options. It refuses to send Header over plain
// http to a host other than loopback.
func NewWebhook(o WebhookOptions) (*Webhook, error) {
	u, err := absoluteURL("URL", o.URL)
	if err != nil {
		return nil, err
	}
	w := &Webhook{url: u, header: http.Header{},
		attempts: o.Attempts, backoff: o.Backoff, timeout: o.Timeout}
	if o.StatusURL != "" {
		if w.statusURL, err = absoluteURL("StatusURL", o.StatusURL); err != nil {
			return nil, err
		}
	}
	if len(o.Header) > 0 {
		if err := headersSafe("URL", w.url); err != nil {
			return nil, err
		}
		if w.statusURL != nil {
			if err := headersSafe("StatusURL", w.statusURL); err != nil {
				return nil, err
			}
		}
	}
	for k, v := range o.Header {
		if k == "" || strings.ContainsFunc(k, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == ':' }) {
			return nil, fmt.Errorf("route: WebhookOptions.Header: bad name %q", k)
		}
		// The value is likely a secret: never quote it.
		if strings.ContainsAny(v, "\r\n\x00") {
			return nil, fmt.Errorf("route: WebhookOptions.Header: value of %s contains a line break or NUL", k)
		}
		w.header.Set(k, v)
	}
	switch {
	case o.Attempts < 0:
		return nil, errors.New("route: WebhookOptions.Attempts must not be negative")
	case o.Backoff < 0:
		return nil, errors.New("route: WebhookOptions.Backoff must not be negative")
	case o.Timeout < 0:
		return nil, errors.New("route: WebhookOptions.Timeout must not be negative")
	}
	if w.attempts == 0 {
		w.attempts = DefaultWebhookAttempts
	}
	if w.backoff == 0 {
		w.backoff = DefaultWebhookBackoff
	}
	if w.timeout == 0 {
		w.timeout = DefaultWebhookTimeout
	}
	// A copy, so that the caller's client keeps its own redirect policy.
	client := http.Client{}
	if o.Client != nil {
		client = *o.Client
	}
	client.CheckRedirect = noRedirect
	w.client = &client
	return w, nil
}

// noRedirect makes an http.Client hand a 3xx answer back as it is.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// headersSafe refuses a URL that would carry the secret headers in clear
// text: plain http to a host other than loopback. The URL is not quoted
// (its query may hold a token), only its host.
func headersSafe(option string, u *url.URL) error {
	if u.Scheme == "https" || isLoopback(u.Hostname()) {
		return nil
	}
	return fmt.Errorf("route: WebhookOptions.%s is plain http to %s, which is not loopback: "+
		"the headers (secrets) are sent only over https; use an https URL", option, u.Hostname())
}

// isLoopback reports whether host is localhost or a loopback address
// (127.0.0.0/8, ::1).
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// absoluteURL checks that s is an absolute http or https URL. The URL is
// not quoted in the error: its query may hold a token.
func absoluteURL(option, s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("route: WebhookOptions.%s does not parse as a URL", option)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("route: WebhookOptions.%s must be an http or https URL", option)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("route: WebhookOptions.%s has no host", option)
	}
	return u, nil
}

// cutoverBody is what Cutover POSTs.
type cutoverBody struct {
	MailboxKey string `json:"mailbox_key"`
	Address    string `json:"address"`
	Org        string `json:"org"`
	Route      string `json:"route"`
}

// IdempotencyKey is the Idempotency-Key header Cutover sends for a mailbox.
func IdempotencyKey(key string) string { return "mailwave-cutover-" + key }

// Cutover asks the API to route the mailbox to the target. 5xx, 408 and
// network errors are tried again within the call, then returned as a
// retryable error; 429 is a *port.ThrottledError; any other 4xx, and
// any 3xx (a redirect, not followed), is a permanent ErrTypeInvalidMailbox.
func (w *Webhook) Cutover(ctx context.Context, m contract.MailboxRef) error {
	if m.Key == "" || m.Address == "" {
		return port.Permanent(contract.ErrTypeInvalidMailbox, "webhook: mailbox %s has no key or no address", m.Key)
	}
	body, err := json.Marshal(cutoverBody{MailboxKey: m.Key, Address: m.Address, Org: m.Org, Route: string(port.RouteTarget)})
	if err != nil {
		return fmt.Errorf("webhook: cutover of mailbox %s: %w", m.Key, err)
	}
	res, err := w.do(ctx, "cutover", m.Key, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url.String(), bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", IdempotencyKey(m.Key))
		return req, nil
	})
	if err != nil {
		return err
	}
	switch {
	case res.status/100 == 2, res.status == http.StatusConflict:
		return nil
	default:
		return res.fail("cutover", m.Key)
	}
}

// Route asks StatusURL where the mailbox's mail goes, or reports the
// source when there is no StatusURL.
func (w *Webhook) Route(ctx context.Context, m contract.MailboxRef) (port.Route, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if w.statusURL == nil {
		return port.RouteSource, nil
	}
	u := *w.statusURL
	q := u.Query()
	q.Set("mailbox_key", m.Key)
	u.RawQuery = q.Encode()
	res, err := w.do(ctx, "route", m.Key, func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	})
	if err != nil {
		return "", err
	}
	switch {
	case res.status == http.StatusNotFound:
		return port.RouteSource, nil
	case res.status/100 == 2:
		var answer struct {
			Route port.Route `json:"route"`
		}
		// The decoding error is not quoted: it may echo the body.
		if err := json.Unmarshal(res.body, &answer); err != nil {
			return "", fmt.Errorf("webhook: route of mailbox %s: the status answer is not JSON", m.Key)
		}
		switch answer.Route {
		case port.RouteSource, port.RouteTarget:
			return answer.Route, nil
		}
		return "", fmt.Errorf("webhook: route of mailbox %s: the status answer has no route of source or target", m.Key)
	default:
		return "", res.fail("route", m.Key)
	}
}

// response is the part of an HTTP response the callers look at.
type response struct {
	status     int
	body       []byte
	retryAfter string
}

// fail is the error for a status the caller does not accept.
func (r response) fail(op, key string) error {
	status := statusLine(r.status)
	switch {
	case r.status/100 == 3:
		// Following it would send the headers and the address elsewhere;
		// the Location is not quoted (it may hold a token or the address).
		return port.Permanent(contract.ErrTypeInvalidMailbox,
			"webhook: %s of mailbox %s: the API answered %s, a redirect, which is not followed: configure the URL it points to", op, key, status)
	case r.status == http.StatusTooManyRequests:
		return &port.ThrottledError{
			RetryAfter: parseRetryAfter(r.retryAfter, time.Now()),
			Err:        fmt.Errorf("webhook: %s of mailbox %s: %s", op, key, status),
		}
	case r.status/100 == 4:
		// Only the status and a sanitised start of the body: the API
		// may echo the address back.
		msg := status
		if s := bodySnippet(r.body); s != "" {
			msg += " " + s
		}
		return port.Permanent(contract.ErrTypeInvalidMailbox, "webhook refused mailbox %s: %s", key, msg)
	default:
		return fmt.Errorf("webhook: %s of mailbox %s: unexpected status %s", op, key, status)
	}
}

// retryable reports whether a status is worth another try within the
// call: server errors, and 408, which says the request took too long.
func retryable(status int) bool {
	return status/100 == 5 || status == http.StatusRequestTimeout
}

// do sends the request made by build up to w.attempts times, waiting
// between tries while the answer is retryable or the request fails on the
// way. It returns the first other answer, or an error once the tries are
// spent or ctx ends.
func (w *Webhook) do(ctx context.Context, op, key string, build func(context.Context) (*http.Request, error)) (response, error) {
	var last string
	for try := 1; ; try++ {
		res, err := w.once(ctx, build)
		if err == nil && !retryable(res.status) {
			return res, nil
		}
		if ctx.Err() != nil {
			return response{}, fmt.Errorf("webhook: %s of mailbox %s: %w", op, key, ctx.Err())
		}
		if err != nil {
			last = err.Error()
		} else {
			last = "status " + statusLine(res.status)
		}
		if try >= w.attempts {
			return response{}, fmt.Errorf("webhook: %s of mailbox %s failed after %d tries: %s", op, key, try, last)
		}
		t := time.NewTimer(w.backoff << (try - 1))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return response{}, fmt.Errorf("webhook: %s of mailbox %s: %w", op, key, ctx.Err())
		}
	}
}

// once makes one request under the per-request timeout and reads the
// start of the answer.
func (w *Webhook) once(ctx context.Context, build func(context.Context) (*http.Request, error)) (response, error) {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := build(ctx)
	if err != nil {
		return response{}, err
	}
	for k, v := range w.header {
		// The request's own headers (Content-Type, Idempotency-Key) win.
		if _, ok := req.Header[k]; !ok {
			req.Header[k] = v
		}
	}
	resp, err := w.client.Do(req)
	if err != nil {
		// A *url.Error quotes the URL, whose query may hold a token or a
		// mailbox key; keep only what went wrong.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return response{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil && resp.StatusCode/100 == 2 {
		// A success whose answer broke off: try again rather than trust it.
		return response{}, fmt.Errorf("reading the answer to status %s: %w", statusLine(resp.StatusCode), err)
	}
	// Drain a little of the rest so that the connection can be reused.
	_, _ = io.CopyN(io.Discard, resp.Body, maxBody)
	return response{status: resp.StatusCode, body: body, retryAfter: resp.Header.Get("Retry-After")}, nil
}

// statusLine is "400 Bad Request" from the code alone: the reason phrase
// the server sent is foreign text.
func statusLine(code int) string {
	if t := http.StatusText(code); t != "" {
		return strconv.Itoa(code) + " " + t
	}
	return strconv.Itoa(code)
}

// bodySnippet is the first maxSnippet bytes of a body on one line, or
// nothing if the body may hold an address anywhere.
func bodySnippet(body []byte) string {
	if mayHoldAddress(string(body)) {
		return ""
	}
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(body), "?")), " ")
	return snippet(truncate(s, maxSnippet))
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP
// date. Anything else, or a date in the past, is no delay.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0
		}
		// Cap absurd values rather than overflow.
		return time.Duration(min(n, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
