// Package graph writes mail into Exchange Online through Microsoft Graph:
// app-only tokens that renew themselves (token.go), the documented limits
// per mailbox kept by the client rather than found by refusal (budget.go),
// and the calls a copy makes: folders found or made by path, messages
// created as non-draft items carrying their source's identity, found again
// by it, and removed. It imports nothing of Temporal.
package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"mailwave/contract"
	"mailwave/mail/port"
)

// DefaultGraphURL is the public cloud's Graph.
const DefaultGraphURL = "https://graph.microsoft.com/v1.0"

// Client calls Graph for one application.
type Client struct {
	http    *http.Client
	base    string
	tokens  *TokenSource
	budgets *Budgets
	// MaxRounds bounds the refusals (429, 503) one call waits out before it
	// gives up with a ThrottledError (default 8).
	MaxRounds int
	// OnRefused, if set, hears of each refusal, with when the refused
	// request was sent: the organisation's adaptive rate cuts on it, as
	// it does on an IMAP target's (the tenant's own limit).
	OnRefused func(sentAt time.Time)
}

// NewClient calls Graph at base ("" is DefaultGraphURL) with tokens from
// src, keeping budgets per mailbox; hc nil is http.DefaultClient.
func NewClient(hc *http.Client, base string, src *TokenSource, budgets *Budgets) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	if base == "" {
		base = DefaultGraphURL
	}
	return &Client{http: hc, base: strings.TrimSuffix(base, "/"), tokens: src, budgets: budgets, MaxRounds: 8}
}

// Mailbox is one mailbox's calls: by its address (the user principal
// name, which Graph needs) and its key (what errors and budgets name).
type Mailbox struct {
	c      *Client
	upn    string
	key    string
	budget *Budget
}

// Mailbox is the mailbox of m.
func (c *Client) Mailbox(m contract.MailboxRef) *Mailbox {
	return &Mailbox{c: c, upn: m.Address, key: m.Key, budget: c.budgets.For(m.Key)}
}

// apiError is Graph's error body.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// StatusError is a refusal Graph answered, by status and code.
type StatusError struct {
	Status int
	Code   string
	Msg    string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("graph answered %d %s: %s", e.Status, e.Code, e.Msg)
}

// do makes one call to the mailbox's part of Graph with a token, the
// body in JSON, and decodes the answer into out (nil: none).
func (m *Mailbox) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	return m.exchange(ctx, request{method: method, url: m.c.base + "/users/" + url.PathEscape(m.upn) + path, body: body, auth: true}, out)
}

// request is one request to Graph: with auth a token goes with it (an
// upload session's URL carries its own authorisation instead).
type request struct {
	method, url  string
	body         []byte
	contentRange string
	auth         bool
}

// exchange makes a request until it is answered: within the mailbox's
// budget, with a token asked for again once after a 401, waiting out 429
// and 503 for exactly their Retry-After (no request to the mailbox before
// it, and the adaptive rate told), and decodes a JSON answer into out.
func (m *Mailbox) exchange(ctx context.Context, r request, out any) error {
	refreshed := false
	for round := 0; ; round++ {
		sentAt := time.Now()
		status, data, hdr, err := m.send(ctx, r)
		if err != nil {
			return err
		}
		switch {
		case status >= 200 && status < 300:
			if out == nil || len(data) == 0 {
				return nil
			}
			if err := json.Unmarshal(data, out); err != nil {
				return fmt.Errorf("mailbox %s: graph's answer to %s: %w", m.key, r.method, err)
			}
			return nil
		case status == http.StatusUnauthorized && r.auth && !refreshed:
			refreshed = true
			continue
		case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
			wait := retryAfter(hdr.Get("Retry-After"))
			m.budget.RetryAfter(wait)
			if m.c.OnRefused != nil {
				m.c.OnRefused(sentAt)
			}
			if round+1 >= m.c.MaxRounds {
				return &port.ThrottledError{RetryAfter: wait, Err: fmt.Errorf("mailbox %s: %w", m.key, statusError(status, data))}
			}
			continue
		}
		return m.classify(statusError(status, data))
	}
}

// send puts one request on the wire under the budget.
func (m *Mailbox) send(ctx context.Context, r request) (int, []byte, http.Header, error) {
	release, err := m.budget.Acquire(ctx, int64(len(r.body)))
	if err != nil {
		return 0, nil, nil, err
	}
	defer release()
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, bytes.NewReader(r.body))
	if err != nil {
		return 0, nil, nil, err
	}
	var tok *oauth2.Token
	if r.auth {
		if tok, err = m.c.tokens.Token(ctx); err != nil {
			return 0, nil, nil, err
		}
		tok.SetAuthHeader(req)
		if r.body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	if r.contentRange != "" {
		req.Header.Set("Content-Range", r.contentRange)
	}
	resp, err := m.c.http.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("mailbox %s: graph %s: %w", m.key, r.method, scrub(err, m.upn))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("mailbox %s: reading graph's answer: %w", m.key, err)
	}
	if resp.StatusCode == http.StatusUnauthorized && tok != nil {
		m.c.tokens.Invalidate(tok)
	}
	return resp.StatusCode, data, resp.Header, nil
}

// scrub takes the mailbox's address out of a transport error (which names
// the URL).
func scrub(err error, upn string) error {
	return errors.New(strings.ReplaceAll(strings.ReplaceAll(err.Error(), url.PathEscape(upn), "<mailbox>"), upn, "<mailbox>"))
}

func statusError(status int, data []byte) *StatusError {
	var e apiError
	_ = json.Unmarshal(data, &e)
	return &StatusError{Status: status, Code: e.Error.Code, Msg: firstLine(e.Error.Message)}
}

// classify turns a refusal into the ports' errors: a mailbox that is not
// there, or a token refused twice, is permanent; a body too large is the
// caller's bad item; anything else is retried.
func (m *Mailbox) classify(e *StatusError) error {
	switch {
	case e.Status == http.StatusNotFound && (e.Code == "ErrorInvalidUser" || e.Code == "MailboxNotEnabledForRESTAPI" || e.Code == "ResourceNotFound"):
		return port.Permanent(contract.ErrTypeMailboxNotFound, "mailbox %s: not found at the target (%s)", m.key, e.Code)
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		return &port.PermanentError{Type: contract.ErrTypeBadCredentials, Err: refusedApp{m.key, e}}
	}
	return fmt.Errorf("mailbox %s: %w", m.key, e)
}

// refusedApp is the service's refusal of the application for a mailbox:
// its status and code, without the service's message (it may name the
// mailbox); the StatusError stays under it for errors.As.
type refusedApp struct {
	key string
	e   *StatusError
}

func (r refusedApp) Error() string {
	return fmt.Sprintf("mailbox %s: the target refused the application (%d %s): consent or permission missing", r.key, r.e.Status, r.e.Code)
}

func (r refusedApp) Unwrap() error { return r.e }

// retryAfter reads Retry-After in seconds (at least one second).
func retryAfter(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 1 {
		return time.Second
	}
	return time.Duration(n) * time.Second
}
