// Package fakegraph is an in-process stand-in for Microsoft Graph's mail
// API and the identity platform's token endpoint, for tests and
// benchmarks: an HTTPS server that issues short-lived app-only tokens
// (for a client secret or a certificate's signed assertion) and refuses
// expired or revoked ones, keeps mail folders and the messages created in
// them with their extended properties (so a test reads back what a copy
// made), and enforces Graph's documented limits per application and
// mailbox: 4 requests at once, a request budget and an upload budget over
// sliding windows (each scalable), 413 for a body over 4 MB, and 503s on
// demand, refusing with Retry-After as the service does.
package fakegraph

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Limits are the service's, per application and mailbox.
type Limits struct {
	Concurrent    int
	Requests      int
	RequestWindow time.Duration
	UploadBytes   int64
	UploadWindow  time.Duration
	MaxBody       int64 // a request body over it is refused with 413
}

// Documented are Graph's documented limits.
var Documented = Limits{Concurrent: 4, Requests: 10_000, RequestWindow: 10 * time.Minute,
	UploadBytes: 150_000_000, UploadWindow: 5 * time.Minute, MaxBody: 4 << 20}

// Options configure a server.
type Options struct {
	Tenant   string
	ClientID string
	// Secret and Cert: the credentials the application has registered
	// (either or both).
	Secret   string
	Cert     *x509.Certificate
	TokenTTL time.Duration // default an hour
	Limits   Limits        // zero: Documented
	// Mailboxes that exist, by user principal name (address).
	Mailboxes []string
	// Latency is how long each admitted Graph request takes, holding its
	// place among the mailbox's concurrent ones.
	Latency time.Duration
}

// Server is a running fake.
type Server struct {
	*httptest.Server
	o Options

	mu       sync.Mutex
	tokens   map[string]time.Time // token -> expiry
	revoked  bool
	boxes    map[string]*mailbox
	fail503  int
	retry503 time.Duration
	// Refused counts the refusals for the limits, by code.
	refused map[string]int
	// early counts requests that came before the Retry-After the mailbox
	// was last given.
	early    int
	issued   int
	requests int
	uploaded int64
	sessions map[string]*session
}

type mailbox struct {
	folders   map[string]*Folder // by ID
	inFlight  atomic.Int32       // raised under the server's lock; lowered without it, as answers start
	requests  []time.Time
	uploads   []upload
	notBefore time.Time
	refusedAt time.Time
	uploaded  UploadSpan
}

// inFlightGrace: a request that arrives this soon after a refusal was on
// its way before the client read it, and is not counted as early.
const inFlightGrace = 200 * time.Millisecond

type upload struct {
	at time.Time
	n  int64
}

// Folder is a mail folder and what was created in it.
type Folder struct {
	ID          string
	DisplayName string
	ParentID    string
	WellKnown   string
	Messages    []*Message
}

// Message is a message as created, its JSON kept as sent.
type Message struct {
	ID       string
	JSON     map[string]any
	Props    map[string]string // single-value extended properties, by ID
	Size     int64             // bytes of the request that made it
	IsDraft  bool
	Received time.Time
	// Uploaded are the attachments that came through upload sessions.
	Uploaded []Uploaded
}

// Uploaded is an attachment sent through an upload session.
type Uploaded struct {
	Name string
	Data []byte
}

// session is an upload session in progress.
type session struct {
	msg  *Message
	name string
	size int
	data []byte
}

var wellKnown = []string{"inbox", "sentitems", "drafts", "deleteditems", "junkemail", "archive"}

// Start starts a server on loopback.
func Start(o Options) *Server {
	if o.TokenTTL == 0 {
		o.TokenTTL = time.Hour
	}
	if o.Limits == (Limits{}) {
		o.Limits = Documented
	}
	s := &Server{o: o, tokens: map[string]time.Time{}, boxes: map[string]*mailbox{}, refused: map[string]int{}, sessions: map[string]*session{}}
	for _, upn := range o.Mailboxes {
		m := &mailbox{folders: map[string]*Folder{}}
		root := &Folder{ID: newID(), DisplayName: "Top of Information Store", WellKnown: "msgfolderroot"}
		m.folders[root.ID] = root
		for _, wk := range wellKnown {
			f := &Folder{ID: newID(), DisplayName: displayNames[wk], ParentID: root.ID, WellKnown: wk}
			m.folders[f.ID] = f
		}
		s.boxes[strings.ToLower(upn)] = m
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", s.token)
	mux.HandleFunc("/v1.0/users/{user}/{rest...}", s.graph)
	mux.HandleFunc("PUT /upload/{user}/{session}", s.upload)
	s.Server = httptest.NewTLSServer(mux)
	return s
}

var displayNames = map[string]string{"inbox": "Inbox", "sentitems": "Sent Items", "drafts": "Drafts",
	"deleteditems": "Deleted Items", "junkemail": "Junk Email", "archive": "Archive"}

// LoginURL is the identity platform's base URL on this server.
func (s *Server) LoginURL() string { return s.URL }

// GraphURL is Graph's base URL on this server.
func (s *Server) GraphURL() string { return s.URL + "/v1.0" }

// RevokeSecret makes the application's secret and certificate refused
// from now on, and every token issued so far expire.
func (s *Server) RevokeSecret() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked = true
	s.tokens = map[string]time.Time{}
}

// Fail503 makes the next n Graph requests fail with 503 and Retry-After.
func (s *Server) Fail503(n int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail503, s.retry503 = n, retryAfter
}

// Stats are what the server counted.
type Stats struct {
	TokensIssued int
	Refused      map[string]int // by error code
	// Uploaded is the request bytes admitted, over every mailbox.
	Uploaded int64
	// Requests counts the Graph requests that reached a mailbox's limits
	// (admitted or refused for them).
	Requests int
	// Early counts requests to a mailbox that came before the Retry-After
	// it was last given (more than 200 ms after it was given: not already
	// on their way): a client that honours it has none.
	Early int
	// Uploads are each mailbox's admitted upload bytes and the times of
	// its first and last, by address.
	Uploads map[string]UploadSpan
}

// UploadSpan is what one mailbox was sent, and over what time.
type UploadSpan struct {
	Bytes       int64
	First, Last time.Time
}

// Stats reads the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := map[string]int{}
	for k, v := range s.refused {
		r[k] = v
	}
	u := map[string]UploadSpan{}
	for upn, m := range s.boxes {
		if m.uploaded.Bytes > 0 {
			u[upn] = m.uploaded
		}
	}
	return Stats{TokensIssued: s.issued, Refused: r, Early: s.early, Requests: s.requests, Uploaded: s.uploaded, Uploads: u}
}

// Duplicate makes a second item like an existing one, identity and all,
// as a create request applied twice would.
func (s *Server) Duplicate(upn, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.boxes[strings.ToLower(upn)]
	if m == nil {
		return fmt.Errorf("fakegraph: no mailbox %s", upn)
	}
	for _, f := range m.folders {
		for _, msg := range f.Messages {
			if msg.ID == id {
				c := *msg
				c.ID = newID()
				c.Props = map[string]string{}
				for k, v := range msg.Props {
					c.Props[k] = v
				}
				f.Messages = append(f.Messages, &c)
				return nil
			}
		}
	}
	return fmt.Errorf("fakegraph: no item %s", id)
}

// Folders lists a mailbox's folders (nil for an unknown one).
func (s *Server) Folders(upn string) []*Folder {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.boxes[strings.ToLower(upn)]
	if m == nil {
		return nil
	}
	var out []*Folder
	for _, f := range m.folders {
		out = append(out, f)
	}
	return out
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "AAMk" + hex.EncodeToString(b[:])
}

// token is the client credentials grant, for a secret or a certificate's
// assertion.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.PathValue("tenant") != s.o.Tenant:
		oauthError(w, http.StatusBadRequest, "invalid_request", "AADSTS90002: Tenant not found.")
		return
	case r.Form.Get("grant_type") != "client_credentials":
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "AADSTS70003: only client_credentials here.")
		return
	case r.Form.Get("client_id") != s.o.ClientID:
		oauthError(w, http.StatusBadRequest, "unauthorized_client", "AADSTS700016: Application not found in the directory.")
		return
	case s.revoked:
		oauthError(w, http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
		return
	}
	switch {
	case r.Form.Get("client_secret") != "":
		if r.Form.Get("client_secret") != s.o.Secret || s.o.Secret == "" {
			oauthError(w, http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
			return
		}
	case r.Form.Get("client_assertion") != "":
		if err := s.checkAssertion(r.Form.Get("client_assertion"), "https://"+r.Host+r.URL.Path); err != nil {
			oauthError(w, http.StatusUnauthorized, "invalid_client", "AADSTS700027: Client assertion failed signature validation: "+err.Error())
			return
		}
	default:
		oauthError(w, http.StatusUnauthorized, "invalid_client", "AADSTS7000216: client_assertion or client_secret is required.")
		return
	}
	tok := newID() + newID()
	s.tokens[tok] = time.Now().Add(s.o.TokenTTL)
	s.issued++
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"token_type": "Bearer", "access_token": tok,
		"expires_in": int(s.o.TokenTTL.Seconds())})
}

func (s *Server) checkAssertion(assertion, aud string) error {
	if s.o.Cert == nil {
		return fmt.Errorf("no certificate registered")
	}
	tok, err := jwt.Parse(assertion, func(*jwt.Token) (any, error) { return s.o.Cert.PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithAudience(aud), jwt.WithIssuer(s.o.ClientID), jwt.WithExpirationRequired())
	if err != nil {
		return err
	}
	if sub, _ := tok.Claims.GetSubject(); sub != s.o.ClientID {
		return fmt.Errorf("subject %q is not the application", sub)
	}
	return nil
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// graphError answers as Graph does.
func graphError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// graph serves the mail API under the limits.
func (s *Server) graph(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, s.o.Limits.MaxBody+1))
	if err != nil {
		graphError(w, http.StatusBadRequest, "BadRequest", err.Error())
		return
	}
	m, release, ok := s.admit(w, r, int64(len(body)))
	if !ok {
		return
	}
	a := answering(w, release)
	defer a.release() // an answer with nothing written
	w = a
	if s.o.Latency > 0 {
		time.Sleep(s.o.Latency)
	}
	s.route(w, r, m, body)
}

// admit checks the token and the limits, and counts the request.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, size int64) (*mailbox, func(), bool) {
	s.mu.Lock()
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	exp, ok := s.tokens[tok]
	s.mu.Unlock()
	if !ok || time.Now().After(exp) {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		graphError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
		return nil, nil, false
	}
	return s.limit(w, r.PathValue("user"), size)
}

// limit applies the mailbox's limits to a request of size bytes.
func (s *Server) limit(w http.ResponseWriter, user string, size int64) (*mailbox, func(), bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.boxes[strings.ToLower(user)]
	if m == nil {
		graphError(w, http.StatusNotFound, "ErrorInvalidUser", "The requested user is invalid.")
		return nil, nil, false
	}
	now := time.Now()
	s.requests++
	if now.Before(m.notBefore) && now.Sub(m.refusedAt) > inFlightGrace {
		s.early++
	}
	refuse := func(status int, code, msg string, after time.Duration) (*mailbox, func(), bool) {
		s.refused[code]++
		secs := int((after + time.Second - 1) / time.Second)
		m.notBefore, m.refusedAt = now.Add(time.Duration(secs)*time.Second), now
		w.Header().Set("Retry-After", fmt.Sprint(secs))
		graphError(w, status, code, msg)
		return nil, nil, false
	}
	l := s.o.Limits
	if s.fail503 > 0 {
		s.fail503--
		return refuse(http.StatusServiceUnavailable, "ServiceUnavailable", "The service is temporarily unavailable.", s.retry503)
	}
	if size > l.MaxBody {
		s.refused["RequestBodyTooLarge"]++
		graphError(w, http.StatusRequestEntityTooLarge, "RequestBodyTooLarge", "The request body is over the limit of 4 MB.")
		return nil, nil, false
	}
	if int(m.inFlight.Load()) >= l.Concurrent {
		return refuse(http.StatusTooManyRequests, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.", time.Second)
	}
	m.requests = keep(m.requests, now, l.RequestWindow)
	if len(m.requests) >= l.Requests {
		return refuse(http.StatusTooManyRequests, "ApplicationThrottled", "Application is over its MailboxRequests limit.",
			m.requests[0].Add(l.RequestWindow).Sub(now))
	}
	var sent int64
	i := 0
	for i < len(m.uploads) && now.Sub(m.uploads[i].at) >= l.UploadWindow {
		i++
	}
	m.uploads = m.uploads[i:]
	for _, u := range m.uploads {
		sent += u.n
	}
	if size > 0 && sent+size > l.UploadBytes {
		return refuse(http.StatusTooManyRequests, "ApplicationThrottled", "Application is over its MailboxUpload limit.",
			m.uploads[0].at.Add(l.UploadWindow).Sub(now))
	}
	m.requests = append(m.requests, now)
	if size > 0 {
		m.uploads = append(m.uploads, upload{now, size})
		s.uploaded += size
		if m.uploaded.Bytes == 0 {
			m.uploaded.First = now
		}
		m.uploaded.Bytes += size
		m.uploaded.Last = now
	}
	m.inFlight.Add(1)
	return m, func() { m.inFlight.Add(-1) }, true
}

func keep(ts []time.Time, now time.Time, span time.Duration) []time.Time {
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= span {
		i++
	}
	return ts[i:]
}

// route serves one admitted request.
func (s *Server) route(w http.ResponseWriter, r *http.Request, m *mailbox, body []byte) {
	parts := strings.Split(r.PathValue("rest"), "/")
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case len(parts) == 2 && parts[0] == "mailFolders" && r.Method == http.MethodGet:
		f := m.folder(parts[1])
		if f == nil {
			graphError(w, http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
			return
		}
		writeJSON(w, http.StatusOK, folderJSON(f))
	case len(parts) == 3 && parts[0] == "mailFolders" && parts[2] == "childFolders":
		parent := m.folder(parts[1])
		if parent == nil {
			graphError(w, http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
			return
		}
		s.childFolders(w, r, m, parent, body)
	case len(parts) == 3 && parts[0] == "mailFolders" && parts[2] == "messages":
		f := m.folder(parts[1])
		if f == nil {
			graphError(w, http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
			return
		}
		s.messages(w, r, f, body)
	case len(parts) == 4 && parts[0] == "messages" && parts[2] == "attachments" && parts[3] == "createUploadSession":
		msg := m.message(parts[1])
		if msg == nil {
			graphError(w, http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
			return
		}
		var in struct {
			AttachmentItem struct {
				Name string
				Size int
			}
		}
		if err := json.Unmarshal(body, &in); err != nil || in.AttachmentItem.Size < 1 {
			graphError(w, http.StatusBadRequest, "ErrorInvalidRequest", "AttachmentItem with a size is required")
			return
		}
		if in.AttachmentItem.Size > 150<<20 {
			graphError(w, http.StatusRequestEntityTooLarge, "ErrorAttachmentSizeLimitExceeded", "The attachment is over 150 MB.")
			return
		}
		id := newID()
		s.sessions[id] = &session{msg: msg, name: in.AttachmentItem.Name, size: in.AttachmentItem.Size}
		writeJSON(w, http.StatusCreated, map[string]any{"uploadUrl": s.URL + "/upload/" + url.PathEscape(r.PathValue("user")) + "/" + id})
	case len(parts) == 2 && parts[0] == "messages" && r.Method == http.MethodPatch:
		msg := m.message(parts[1])
		if msg == nil {
			graphError(w, http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
			return
		}
		var in struct {
			Props []struct{ ID, Value string } `json:"singleValueExtendedProperties"`
		}
		if err := json.Unmarshal(body, &in); err != nil {
			graphError(w, http.StatusBadRequest, "ErrorInvalidRequest", err.Error())
			return
		}
		for _, p := range in.Props {
			msg.Props[strings.ToLower(p.ID)] = p.Value
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": msg.ID})
	case len(parts) == 2 && parts[0] == "messages" && r.Method == http.MethodDelete:
		for _, f := range m.folders {
			for i, msg := range f.Messages {
				if msg.ID == parts[1] {
					f.Messages = append(f.Messages[:i], f.Messages[i+1:]...)
					w.WriteHeader(http.StatusNoContent)
					return
				}
			}
		}
		graphError(w, http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
	default:
		graphError(w, http.StatusBadRequest, "BadRequest", "fakegraph does not serve "+r.Method+" "+r.URL.Path)
	}
}

func (m *mailbox) message(id string) *Message {
	for _, f := range m.folders {
		for _, msg := range f.Messages {
			if msg.ID == id {
				return msg
			}
		}
	}
	return nil
}

// upload takes a chunk of an upload session (no token: the URL is the
// authorisation), counted against the mailbox's limits.
func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 60<<20))
	if err != nil {
		graphError(w, http.StatusBadRequest, "BadRequest", err.Error())
		return
	}
	s.mu.Lock()
	sess := s.sessions[r.PathValue("session")]
	s.mu.Unlock()
	if sess == nil {
		graphError(w, http.StatusNotFound, "ErrorItemNotFound", "No such upload session.")
		return
	}
	_, release, ok := s.limit(w, r.PathValue("user"), int64(len(body)))
	if !ok {
		return
	}
	a := answering(w, release)
	defer a.release() // an answer with nothing written
	w = a
	var from, to, total int
	if _, err := fmt.Sscanf(r.Header.Get("Content-Range"), "bytes %d-%d/%d", &from, &to, &total); err != nil ||
		total != sess.size || from != len(sess.data) || to-from+1 != len(body) {
		graphError(w, http.StatusRequestedRangeNotSatisfiable, "InvalidRange", "The Content-Range does not follow what was received.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess.data = append(sess.data, body...)
	if len(sess.data) < sess.size {
		writeJSON(w, http.StatusOK, map[string]any{"nextExpectedRanges": []string{fmt.Sprintf("%d-", len(sess.data))}})
		return
	}
	sess.msg.Uploaded = append(sess.msg.Uploaded, Uploaded{Name: sess.name, Data: sess.data})
	delete(s.sessions, r.PathValue("session"))
	w.WriteHeader(http.StatusCreated)
}

func (m *mailbox) folder(idOrName string) *Folder {
	if f, ok := m.folders[idOrName]; ok {
		return f
	}
	for _, f := range m.folders {
		if f.WellKnown != "" && strings.EqualFold(f.WellKnown, idOrName) {
			return f
		}
	}
	return nil
}

func folderJSON(f *Folder) map[string]any {
	return map[string]any{"id": f.ID, "displayName": f.DisplayName, "parentFolderId": f.ParentID, "totalItemCount": len(f.Messages)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// childFolders lists (filtered by displayName eq '...') or creates.
func (s *Server) childFolders(w http.ResponseWriter, r *http.Request, m *mailbox, parent *Folder, body []byte) {
	if r.Method == http.MethodPost {
		var in struct{ DisplayName string }
		if err := json.Unmarshal(body, &in); err != nil || in.DisplayName == "" {
			graphError(w, http.StatusBadRequest, "ErrorInvalidRequest", "displayName is required")
			return
		}
		for _, f := range m.folders {
			if f.ParentID == parent.ID && strings.EqualFold(f.DisplayName, in.DisplayName) {
				graphError(w, http.StatusConflict, "ErrorFolderExists", "A folder with the specified name already exists.")
				return
			}
		}
		f := &Folder{ID: newID(), DisplayName: in.DisplayName, ParentID: parent.ID}
		m.folders[f.ID] = f
		writeJSON(w, http.StatusCreated, folderJSON(f))
		return
	}
	name, filtered := eqFilter(r.URL.Query().Get("$filter"), "displayName")
	var out []any
	for _, f := range m.folders {
		if f.ParentID == parent.ID && (!filtered || strings.EqualFold(f.DisplayName, name)) {
			out = append(out, folderJSON(f))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
}

// eqFilter reads "<field> eq '<value>'" (” for a quote inside).
func eqFilter(filter, field string) (string, bool) {
	v, ok := strings.CutPrefix(filter, field+" eq '")
	if !ok || !strings.HasSuffix(v, "'") {
		return "", false
	}
	return strings.ReplaceAll(strings.TrimSuffix(v, "'"), "''", "'"), true
}

// messages lists (filtered by an extended property's value) or creates.
func (s *Server) messages(w http.ResponseWriter, r *http.Request, f *Folder, body []byte) {
	if r.Method == http.MethodPost {
		var in map[string]any
		if err := json.Unmarshal(body, &in); err != nil {
			graphError(w, http.StatusBadRequest, "ErrorInvalidRequest", err.Error())
			return
		}
		msg := &Message{ID: newID(), JSON: in, Props: map[string]string{}, Size: int64(len(body)), IsDraft: true}
		if props, ok := in["singleValueExtendedProperties"].([]any); ok {
			for _, p := range props {
				pm, _ := p.(map[string]any)
				id, _ := pm["id"].(string)
				v, _ := pm["value"].(string)
				msg.Props[strings.ToLower(id)] = v
			}
		}
		// PR_MESSAGE_FLAGS set at creation without MSGFLAG_UNSENT (8): not
		// a draft, as Exchange does.
		if v, ok := msg.Props["integer 0x0e07"]; ok {
			var flags int
			_, _ = fmt.Sscan(v, &flags)
			msg.IsDraft = flags&8 != 0
		}
		f.Messages = append(f.Messages, msg)
		writeJSON(w, http.StatusCreated, map[string]any{"id": msg.ID, "isDraft": msg.IsDraft})
		return
	}
	query := r.URL.Query()
	id, value, filtered := propFilter(query.Get("$filter"))
	expand, expanding := expandFilter(query.Get("$expand"))
	var out []any
	for _, msg := range f.Messages {
		if filtered && msg.Props[strings.ToLower(id)] != value {
			continue
		}
		item := map[string]any{"id": msg.ID}
		if v, ok := msg.Props[strings.ToLower(expand)]; expanding && ok {
			item["singleValueExtendedProperties"] = []any{map[string]string{"id": expand, "value": v}}
		}
		out = append(out, item)
	}
	top, skip := len(out), 0
	fmt.Sscan(query.Get("$top"), &top)
	fmt.Sscan(query.Get("$skip"), &skip)
	page := map[string]any{}
	if skip < len(out) {
		out = out[skip:]
	} else {
		out = nil
	}
	if top > 0 && len(out) > top {
		out = out[:top]
		query.Set("$skip", fmt.Sprint(skip+top))
		page["@odata.nextLink"] = s.URL + r.URL.Path + "?" + query.Encode()
	}
	page["value"] = out
	writeJSON(w, http.StatusOK, page)
}

// expandFilter reads singleValueExtendedProperties($filter=id eq 'ID').
func expandFilter(q string) (string, bool) {
	rest, ok := strings.CutPrefix(q, "singleValueExtendedProperties($filter=id eq '")
	if !ok || !strings.HasSuffix(rest, "')") {
		return "", false
	}
	return strings.TrimSuffix(rest, "')"), true
}

// propFilter reads singleValueExtendedProperties/Any(ep: ep/id eq 'ID' and
// ep/value eq 'V').
func propFilter(q string) (id, value string, ok bool) {
	rest, ok := strings.CutPrefix(q, "singleValueExtendedProperties/Any(ep: ep/id eq '")
	if !ok {
		return "", "", false
	}
	id, rest, ok = strings.Cut(rest, "' and ep/value eq '")
	if !ok || !strings.HasSuffix(rest, "')") {
		return "", "", false
	}
	return id, strings.ReplaceAll(strings.TrimSuffix(rest, "')"), "''", "'"), true
}

// answering ends a request's time in flight when its answer starts, as the
// service's does: a client that sends its next request once it has read an
// answer is never over the concurrency limit for it.
func answering(w http.ResponseWriter, release func()) *answer {
	return &answer{ResponseWriter: w, release: sync.OnceFunc(release)}
}

type answer struct {
	http.ResponseWriter
	release func()
}

func (a *answer) WriteHeader(status int) {
	a.release()
	a.ResponseWriter.WriteHeader(status)
}

func (a *answer) Write(b []byte) (int, error) {
	a.release()
	return a.ResponseWriter.Write(b)
}
