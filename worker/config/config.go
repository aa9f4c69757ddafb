// Package config loads the worker's configuration file: per organisation,
// the source and target IMAP servers, how to copy, how to send notices and
// how to cut over routing. The file is validated once, at start-up, and
// every problem is reported with its file, line and key path.
//
// The file never holds secret values, only their names; Secrets looks the
// values up at use time, so that they never travel in workflow inputs.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"go.yaml.in/yaml/v3"

	"mailwave/roster/rosterstore"
)

// File is a loaded and validated configuration file.
type File struct {
	Path        string // as given to Load
	SecretsFile string // absolute, or "" for environment only
	Orgs        []Org
}

// Org is one organisation: whose mailboxes move from where to where.
type Org struct {
	Name    string
	Domains []string // lower case
	Default bool
	// Copier copies the organisation's mailboxes: its kind, and that
	// kind's settings. Copy tunes it.
	Copier Copier
	Copy   Copy
	// CatchAll takes mailboxes of any organisation name the file does not
	// know (catch_all: the worker's flags make one, the simulated estate
	// serving every organisation alike).
	CatchAll bool
	// Notifier sends the users' notices; Router cuts over their mail.
	Notifier Notifier
	Router   Router
}

// Copier kinds. A new kind is one connector package under mail/, one case
// here and in the decoder, and one line in the worker's table of copier
// constructors (worker/workerapp).
const (
	CopierIMAP  = "imap"  // between two IMAP servers (mail/imapcopy)
	CopierGraph = "graph" // from an IMAP source into Exchange Online through Microsoft Graph (mail/graphcopy)
	CopierSim   = "sim"   // the simulated estate in place of both (mail/sim)
)

// CopierKinds lists the kinds a configuration may name.
var CopierKinds = []string{CopierIMAP, CopierGraph, CopierSim}

// Copier is how an organisation's mailboxes are copied. Only the settings
// of its Kind are set.
type Copier struct {
	Kind   string
	Source IMAP  // imap, graph: the old server
	Target IMAP  // imap: the new service
	Graph  Graph // graph: the tenant and the application
	Sim    Sim   // sim: the estate's directory and settings
}

// App is an application registered in a Microsoft Entra tenant, for
// app-only tokens: its client secret (a secret's name) or a certificate
// and key (PEM files), and the identity platform's base URL (for national
// clouds and tests). The graph copier has one, and so may an IMAP
// endpoint's xoauth2 login (Exchange Online's IMAP).
type App struct {
	Tenant          string
	ClientID        string
	ClientSecret    string // a secret's name
	CertificateFile string
	KeyFile         string
	LoginURL        string
	CAFile          string // extra CAs, PEM (for Graph as well, in the graph copier)
}

// Graph is Exchange Online reached through Microsoft Graph: the tenant
// and the application registered in it, Graph's base URL (for national
// clouds and tests), and the limits per mailbox, the documented ones by
// default.
type Graph struct {
	App
	GraphURL      string
	Concurrent    int
	UploadBytes   int64
	UploadWindow  time.Duration
	Requests      int
	RequestWindow time.Duration
}

// IMAP is one IMAP endpoint.
type IMAP struct {
	Host               string
	Port               int
	Security           string // tls (implicit), starttls or none
	CAFile             string
	InsecureSkipVerify bool
	Auth               Auth
}

// Auth says how to log in as a mailbox. Username, MasterUser and the secret
// names are templates for Expand.
type Auth struct {
	Mechanism      string // plain, login or xoauth2
	Username       string
	MasterUser     string // if set, log in as "<username>*<master_user>" with the master's secret
	PasswordSecret string // for plain and login
	// For xoauth2, one of: TokenSecret, a static bearer token per user
	// from the secrets; or App, app-only tokens asked for and renewed by
	// the worker (Exchange Online's IMAP, logged in to as the mailbox's
	// address).
	TokenSecret string
	App         *App
}

// Copy tunes the copying of one mailbox.
type Copy struct {
	Window          int   // messages in flight per mailbox
	MaxMessageBytes int64 // larger messages are bad items
	BadItemLimit    int
	BytesPerSecond  int64             // ceiling per worker (0: none); the rate adapts below it
	FolderMap       map[string]string // source folder name -> target folder name
}

// Notifier sends notices to users, by SMTP or into an outbox directory.
type Notifier struct {
	Kind         string // smtp or outbox
	From         string
	AdminContact string
	TemplatesDir string
	SMTP         SMTP
	Outbox       Outbox
}

// SMTP is the notifier's submission server.
type SMTP struct {
	Host               string
	Port               int
	Security           string // starttls, tls or none
	CAFile             string
	InsecureSkipVerify bool
	Username           string
	PasswordSecret     string
	AuthMechanism      string // plain or login
	LedgerDir          string // records what was sent, so a retry does not send twice
	LedgerURL          string // or a postgres:// database shared by a fleet, in place of LedgerDir
}

// Outbox writes notices as files instead of sending them.
type Outbox struct {
	Dir string
}

// Router cuts a mailbox's mail over to the target.
type Router struct {
	Kind string // transport_map, webhook or sim
	// TaskQueue, when set, is the task queue of the routing host (the mail
	// server whose transport map this is): cutovers run there, on a worker
	// started with --route-only, and no other worker builds this router.
	TaskQueue    string
	TransportMap TransportMap
	Webhook      Webhook
	Sim          Sim
}

// TransportMap edits a Postfix transport map and, if Command is set, runs it
// (e.g. postmap) afterwards.
type TransportMap struct {
	Path           string
	NextHop        string
	Command        []string
	CommandTimeout time.Duration
}

// Webhook asks a directory service to cut over. HeaderSecrets maps a header
// name to the name of the secret holding its value.
type Webhook struct {
	URL           string
	StatusURL     string
	HeaderSecrets map[string]string
	Attempts      int
	Timeout       time.Duration
}

// Sim is the simulated estate (mail/sim) in a directory. A file's router
// of kind sim sets only Dir; the worker's flags, which become an
// organisation whose copier and router are the estate, set the rest.
type Sim struct {
	Dir            string
	TimeScale      float64 // simulated seconds per real second
	BytesPerSecond int64   // the most this worker sends; a ceiling under a tenant limit
	// TenantBytesPerSecond is the target tenant's limit, shared by every
	// worker of the estate (0: none).
	TenantBytesPerSecond int64
	// MailboxBytesPerSecond is the target's per-mailbox budget, kept by
	// each copy (0: none).
	MailboxBytesPerSecond int64
	Instant               bool    // copies take no time (benchmarks)
	TransientRate         float64 // chance of a transient error per copy batch or cutover
	ThrottleRate          float64 // chance of a throttling answer per copy batch or cutover
	ThrottleRetryAfter    time.Duration
	NotFoundRate          float64 // share of mailboxes missing at the source
}

// Defaults.
const (
	DefaultWindow          = 16
	DefaultMaxMessageBytes = 35 << 20 // the cloud service's limit
	DefaultCommandTimeout  = 30 * time.Second
	DefaultWebhookAttempts = 3
	DefaultWebhookTimeout  = 10 * time.Second
)

var (
	rootKeys         = []string{"secrets_file", "organisations"}
	orgKeys          = []string{"name", "domains", "default", "catch_all", "copier", "source", "target", "copy", "sim", "notifier", "router"}
	copierKeys       = []string{"kind", "source", "target", "graph", "sim"}
	appKeys          = []string{"tenant", "client_id", "client_secret", "certificate_file", "key_file", "login_url", "ca_file"}
	graphKeys        = append(slices.Clip(appKeys), "graph_url", "concurrent", "upload_bytes", "upload_window", "requests", "request_window")
	estateKeys       = []string{"dir", "time_scale", "bytes_per_second", "tenant_bytes_per_second", "mailbox_bytes_per_second", "instant", "transient_rate", "throttle_rate", "throttle_retry_after", "not_found_rate"}
	imapKeys         = []string{"host", "port", "security", "ca_file", "insecure_skip_verify", "auth"}
	authKeys         = []string{"mechanism", "username", "master_user", "password_secret", "token_secret", "app"}
	copyKeys         = []string{"window", "max_message_bytes", "bad_item_limit", "bytes_per_second", "folder_map"}
	notifierKeys     = []string{"kind", "from", "admin_contact", "templates_dir", "smtp", "outbox"}
	smtpKeys         = []string{"host", "port", "security", "ca_file", "insecure_skip_verify", "username", "password_secret", "auth_mechanism", "ledger_dir", "ledger_url"}
	outboxKeys       = []string{"dir"}
	routerKeys       = []string{"kind", "task_queue", "transport_map", "webhook", "sim"}
	transportMapKeys = []string{"path", "next_hop", "command", "command_timeout"}
	webhookKeys      = []string{"url", "status_url", "header_secrets", "attempts", "timeout"}
	simKeys          = []string{"dir"}
)

// Load reads, defaults and validates a configuration file. Relative paths in
// it resolve against the file's directory. A file with problems yields
// Problems listing all of them.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	l := &loader{file: path, dir: filepath.Dir(abs)}
	f := l.load(data)
	if l.overflow != nil {
		// The rest would be noise: keys the merges did not bring in.
		return nil, Problems{*l.overflow}
	}
	if len(l.probs) > 0 {
		// Stable, so that problems on one line keep the order of the walk.
		slices.SortStableFunc(l.probs, func(a, b Problem) int { return a.Line - b.Line })
		return nil, l.probs
	}
	f.Path = path
	return f, nil
}

var yamlErrLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (l *loader) syntax(err error) {
	if m := yamlErrLine.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		l.add(n, "", "%s", m[2])
		return
	}
	l.add(0, "", "%s", strings.TrimPrefix(err.Error(), "yaml: "))
}

func (l *loader) load(data []byte) *File {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			l.add(0, "", "the file is empty")
		} else {
			l.syntax(err)
		}
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		l.add(extra.Line, "", "only one YAML document is allowed")
	case !errors.Is(err, io.EOF):
		l.syntax(err)
	}
	if len(doc.Content) == 0 {
		l.add(0, "", "the file is empty")
		return nil
	}
	root := doc.Content[0]
	s := l.section(root, "", root.Line, rootKeys)
	f := &File{}
	if v, ok := s.str("secrets_file"); ok && v != "" {
		f.SecretsFile = l.resolvePath(v)
	}
	e, ok := s.get("organisations")
	switch {
	case !ok:
		s.missing("organisations", "required (a list of organisations)")
	case e.val.Kind != yaml.SequenceNode:
		s.problem("organisations", "expected a list, got %s", describe(e.val))
	case len(e.val.Content) == 0:
		s.problem("organisations", "at least one organisation is required")
	default:
		metas := make([]orgMeta, len(e.val.Content))
		for i, n := range e.val.Content {
			var o Org
			o, metas[i] = l.org(n, i)
			f.Orgs = append(f.Orgs, o)
		}
		l.crossCheck(f.Orgs, metas)
	}
	return f
}

// orgMeta keeps the lines that checks across organisations refer to.
type orgMeta struct {
	line, nameLine, defaultLine int
	domainLines                 []int
}

func (l *loader) org(n *yaml.Node, i int) (Org, orgMeta) {
	n = deref(n)
	s := l.section(n, fmt.Sprintf("organisations[%d]", i), n.Line, orgKeys)
	var o Org
	m := orgMeta{line: n.Line}
	o.Name = s.need("name")
	m.nameLine = s.lineOf("name")
	if strings.Contains(o.Name, "@") {
		// Shown in plain text: metrics labels, log lines.
		l.add(m.nameLine, s.at("name"), "an organisation's name is shown in plain text (metrics, logs) and must not be an address")
	}
	doms, lines := s.list("domains")
	for j, d := range doms {
		d = strings.ToLower(d)
		if strings.ContainsAny(d, "@") || strings.ContainsFunc(d, unicode.IsSpace) || strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") {
			l.add(lines[j], fmt.Sprintf("%s[%d]", s.at("domains"), j), "%q is not a domain", d)
			continue
		}
		o.Domains = append(o.Domains, d)
		m.domainLines = append(m.domainLines, lines[j])
	}
	o.Default = s.boolean("default")
	o.CatchAll = s.boolean("catch_all")
	m.defaultLine = s.lineOf("default")

	o.Copier = l.copier(s)
	if o.Copier.Kind == CopierSim {
		s.unused("the simulated estate", "copy")
	} else {
		cp, _ := s.sub("copy", copyKeys)
		o.Copy = copySection(cp)
	}
	return l.orgRest(s, o, m)
}

// copier reads an organisation's copier: a copier section with its kind,
// as the notifier and router have,
//
//	copier: {kind: imap, source: {...}, target: {...}}
//	copier: {kind: sim, sim: {dir: ...}}
//
// or, as files written before it had a kind, source and target (imap) or
// sim at the organisation's level.
func (l *loader) copier(org *section) Copier {
	var c Copier
	s, ok := org.sub("copier", copierKeys)
	if ok {
		for _, k := range []string{"source", "target", "graph", "sim"} {
			if !org.blank(k) {
				org.problem(k, "give it under copier, beside the copier's kind, not at the organisation's level as well")
			}
		}
		c.Kind = s.enum("kind", "", CopierKinds...)
	} else {
		// The layout before copier had a kind.
		s = org
		c.Kind = CopierIMAP
		if org.has("sim") {
			c.Kind = CopierSim
		}
	}
	switch c.Kind {
	case CopierGraph:
		if sub, ok := s.required("source", imapKeys, "required for the graph copier"); ok {
			c.Source = imapSection(sub)
		}
		if sub, ok := s.required("graph", graphKeys, "required for the graph copier"); ok {
			c.Graph = graphSection(sub)
		}
		s.unused("the graph copier", "target", "sim")
	case CopierSim:
		if sub, ok := s.required("sim", estateKeys, "required for the sim copier"); ok {
			c.Sim = estateSection(sub)
		}
		s.unused("the sim copier", "source", "target", "graph")
	case CopierIMAP:
		if sub, ok := s.required("source", imapKeys, "required for the imap copier"); ok {
			c.Source = imapSection(sub)
		}
		if sub, ok := s.required("target", imapKeys, "required for the imap copier"); ok {
			c.Target = imapSection(sub)
		}
		s.unused("the imap copier", "graph", "sim")
	}
	return c
}

// orgRest reads what every organisation has, whatever its copier.
func (l *loader) orgRest(s *section, o Org, m orgMeta) (Org, orgMeta) {
	if sub, ok := s.required("notifier", notifierKeys, "required"); ok {
		o.Notifier = notifierSection(sub)
	}
	if sub, ok := s.required("router", routerKeys, "required"); ok {
		o.Router = routerSection(sub)
	}
	return o, m
}

// crossCheck finds what no single organisation can: clashing names,
// domains claimed twice and more than one default.
func (l *loader) crossCheck(orgs []Org, metas []orgMeta) {
	names := map[string]int{}
	domains := map[string]int{}
	def, catchAll := -1, -1
	for i, o := range orgs {
		path := fmt.Sprintf("organisations[%d]", i)
		if o.Name != "" {
			key := strings.ToLower(o.Name)
			if j, dup := names[key]; dup {
				l.add(metas[i].nameLine, path+".name", "%q is already the name of organisations[%d] (line %d); names are matched case-insensitively", o.Name, j, metas[j].nameLine)
			} else {
				names[key] = i
			}
		}
		for k, d := range o.Domains {
			if j, dup := domains[d]; dup {
				if j == i {
					l.add(metas[i].domainLines[k], fmt.Sprintf("%s.domains[%d]", path, k), "%s is listed twice", d)
				} else {
					l.add(metas[i].domainLines[k], fmt.Sprintf("%s.domains[%d]", path, k), "%s is already claimed by organisations[%d] (%s)", d, j, orgs[j].Name)
				}
				continue
			}
			domains[d] = i
		}
		if o.Default {
			if def >= 0 {
				l.add(metas[i].defaultLine, path+".default", "only one organisation may be the default; organisations[%d] (line %d) already is", def, metas[def].defaultLine)
			} else {
				def = i
			}
		}
		if o.CatchAll {
			if catchAll >= 0 {
				l.add(metas[i].line, path+".catch_all", "only one organisation may catch all; organisations[%d] already does", catchAll)
			} else {
				catchAll = i
			}
		}
	}
}

func imapSection(s *section) IMAP {
	var m IMAP
	m.Host = s.need("host")
	m.Security = s.enum("security", "tls", "tls", "starttls", "none")
	def := 143
	if m.Security == "tls" {
		def = 993
	}
	m.Port = s.port("port", def)
	m.CAFile = s.caFile("ca_file")
	m.InsecureSkipVerify = s.boolean("insecure_skip_verify")

	a, _ := s.sub("auth", authKeys)
	m.Auth.Mechanism = a.enum("mechanism", "plain", "plain", "login", "xoauth2")
	m.Auth.Username = "{address}"
	if a.has("username") {
		if m.Auth.Username = a.template("username"); strings.TrimSpace(m.Auth.Username) == "" {
			a.problem("username", "must not be empty")
		}
	}
	m.Auth.MasterUser = a.template("master_user")
	m.Auth.PasswordSecret = a.template("password_secret")
	m.Auth.TokenSecret = a.template("token_secret")
	switch mech := m.Auth.Mechanism; mech {
	case "plain", "login":
		a.require("password_secret", "required for mechanism "+mech)
		a.unused("mechanism "+mech, "token_secret", "app")
	case "xoauth2":
		switch {
		case a.has("app") && !a.blank("token_secret"):
			a.problem("app", "give token_secret (a static token) or app (app-only tokens), not both")
		case a.has("app"):
			if sub, ok := a.sub("app", appKeys); ok {
				app := appSection(sub)
				m.Auth.App = &app
			}
		default:
			a.require("token_secret", "required for mechanism xoauth2 (a static token), or app (app-only tokens)")
		}
		// A bearer token names one user; there is no master login with it.
		a.unused("mechanism xoauth2", "password_secret", "master_user")
	}
	return m
}

func copySection(s *section) Copy {
	c := Copy{
		Window:          int(s.ranged("window", DefaultWindow, 1, 256, "is not in 1-256")),
		MaxMessageBytes: s.ranged("max_message_bytes", DefaultMaxMessageBytes, 1, -1, "must be more than zero"),
		BadItemLimit:    int(s.ranged("bad_item_limit", 0, 0, 1<<31-1, "must be 0 or more")),
		BytesPerSecond:  s.ranged("bytes_per_second", 0, 0, -1, "must be 0 (unlimited) or more"),
	}
	c.FolderMap = s.dict("folder_map", nil)
	return c
}

func checkAddress(s *section, k string) string {
	v, ok := s.str(k)
	if !ok || strings.TrimSpace(v) == "" {
		return v
	}
	if _, err := mail.ParseAddress(v); err != nil {
		s.problem(k, "%q is not an RFC 5322 address: %s", v, strings.TrimPrefix(err.Error(), "mail: "))
	}
	return v
}

func notifierSection(s *section) Notifier {
	var n Notifier
	n.Kind = s.enum("kind", "", "smtp", "outbox")
	s.require("from", "required")
	n.From = checkAddress(s, "from")
	n.AdminContact = checkAddress(s, "admin_contact")
	n.TemplatesDir = s.existingDir("templates_dir")
	if n.Kind == "" {
		return n
	}
	for _, k := range []string{"smtp", "outbox"} {
		if k != n.Kind {
			s.unused("kind "+n.Kind, k)
		}
	}
	sub, ok := s.sub(n.Kind, map[string][]string{"smtp": smtpKeys, "outbox": outboxKeys}[n.Kind])
	if !ok {
		s.missing(n.Kind, "required for kind "+n.Kind)
		return n
	}
	switch n.Kind {
	case "smtp":
		n.SMTP = smtpSection(sub)
	case "outbox":
		n.Outbox.Dir = sub.requiredPath("dir")
	}
	return n
}

func smtpSection(s *section) SMTP {
	var m SMTP
	m.Host = s.need("host")
	m.Security = s.enum("security", "starttls", "starttls", "tls", "none")
	m.Port = s.port("port", map[string]int{"starttls": 587, "tls": 465, "none": 25, "": 587}[m.Security])
	m.CAFile = s.caFile("ca_file")
	m.InsecureSkipVerify = s.boolean("insecure_skip_verify")
	m.Username, _ = s.str("username")
	m.PasswordSecret, _ = s.str("password_secret")
	// The notifier is one account, not per user: a placeholder is a mistake.
	if strings.ContainsAny(m.PasswordSecret, "{}") {
		s.problem("password_secret", "placeholders are not used here (the notifier logs in as one account)")
	}
	if m.Username != "" {
		m.AuthMechanism = s.enum("auth_mechanism", "plain", "plain", "login")
		s.require("password_secret", "required when username is set")
	} else {
		for _, k := range []string{"password_secret", "auth_mechanism"} {
			if !s.blank(k) {
				s.problem(k, "not used without username")
			}
		}
	}
	if s.has("ledger_url") {
		m.LedgerURL, _ = s.str("ledger_url")
		if !rosterstore.IsPostgres(m.LedgerURL) {
			s.problem("ledger_url", "want a postgres:// URL (a database every worker reaches)")
		}
		s.unused("a ledger_url (give one of the two)", "ledger_dir")
		return m
	}
	m.LedgerDir = s.requiredPath("ledger_dir")
	return m
}

// estateSection reads the simulated estate of an organisation (sim):
// tests, demonstrations and benchmarks of a fleet.
func estateSection(s *section) Sim {
	e := Sim{Dir: s.requiredPath("dir")}
	e.TimeScale = s.number("time_scale", 3600, 0, 1e9)
	e.BytesPerSecond = s.ranged("bytes_per_second", 1<<30, 0, -1, "must not be negative")
	e.TenantBytesPerSecond = s.ranged("tenant_bytes_per_second", 0, 0, -1, "must be 0 (none) or more")
	e.MailboxBytesPerSecond = s.ranged("mailbox_bytes_per_second", 0, 0, -1, "must be 0 (none) or more")
	e.Instant = s.boolean("instant")
	e.TransientRate = s.number("transient_rate", 0, 0, 1)
	e.ThrottleRate = s.number("throttle_rate", 0, 0, 1)
	e.ThrottleRetryAfter = s.duration("throttle_retry_after", 5*time.Second)
	e.NotFoundRate = s.number("not_found_rate", 0, 0, 1)
	return e
}

func routerSection(s *section) Router {
	var r Router
	r.Kind = s.enum("kind", "", "transport_map", "webhook", "sim")
	if q, ok := s.str("task_queue"); ok {
		if msg := TaskQueueProblem(q); msg != "" {
			s.problem("task_queue", "%s", msg)
		} else {
			r.TaskQueue = q
		}
	}
	if r.Kind == "" {
		return r
	}
	for _, k := range []string{"transport_map", "webhook", "sim"} {
		if k != r.Kind {
			s.unused("kind "+r.Kind, k)
		}
	}
	known := map[string][]string{"transport_map": transportMapKeys, "webhook": webhookKeys, "sim": simKeys}[r.Kind]
	sub, ok := s.sub(r.Kind, known)
	if !ok {
		s.missing(r.Kind, "required for kind "+r.Kind)
		return r
	}
	switch r.Kind {
	case "transport_map":
		t := &r.TransportMap
		t.Path = sub.requiredPath("path")
		t.NextHop = sub.need("next_hop")
		if strings.TrimSpace(t.NextHop) != "" && strings.ContainsFunc(t.NextHop, unicode.IsSpace) {
			// The value goes into a whitespace-separated file.
			sub.problem("next_hop", "%q must not contain whitespace", t.NextHop)
		}
		t.Command, _ = sub.list("command")
		t.CommandTimeout = sub.duration("command_timeout", DefaultCommandTimeout)
	case "webhook":
		w := &r.Webhook
		sub.require("url", "required")
		w.URL = checkURL(sub, "url")
		w.StatusURL = checkURL(sub, "status_url")
		w.HeaderSecrets = sub.dict("header_secrets", func(name, _ string) string {
			if strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == ':' || r >= 0x7f }) {
				return "not a valid header name"
			}
			return ""
		})
		w.Attempts = int(sub.ranged("attempts", DefaultWebhookAttempts, 1, 100, "is not in 1-100"))
		w.Timeout = sub.duration("timeout", DefaultWebhookTimeout)
	case "sim":
		r.Sim.Dir = sub.requiredPath("dir")
	}
	return r
}

// appSection reads an application's tenant, ID, secret or certificate,
// login URL and CAs: the graph copier's, or an xoauth2 login's app.
func appSection(s *section) App {
	a := App{Tenant: s.need("tenant"), ClientID: s.need("client_id"), ClientSecret: s.template("client_secret"),
		LoginURL: checkURL(s, "login_url"), CAFile: s.caFile("ca_file")}
	if !s.blank("certificate_file") || !s.blank("key_file") {
		a.CertificateFile, a.KeyFile = s.requiredPath("certificate_file"), s.requiredPath("key_file")
		s.unused("a certificate", "client_secret")
	} else {
		s.require("client_secret", "required (or certificate_file and key_file)")
	}
	return a
}

// graphSection reads the graph copier's tenant, application and limits.
func graphSection(s *section) Graph {
	g := Graph{App: appSection(s), GraphURL: checkURL(s, "graph_url")}
	g.Concurrent = int(s.ranged("concurrent", 4, 1, 64, "is not in 1-64"))
	g.UploadBytes = s.ranged("upload_bytes", 150_000_000, 1, -1, "must be more than zero")
	g.UploadWindow = s.duration("upload_window", 5*time.Minute)
	g.Requests = int(s.ranged("requests", 10_000, 1, -1, "must be more than zero"))
	g.RequestWindow = s.duration("request_window", 10*time.Minute)
	return g
}

func checkURL(s *section, k string) string {
	v, ok := s.str(k)
	if !ok || v == "" {
		return v
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		s.problem(k, "%q is not an absolute http(s) URL", v)
	}
	return v
}

// OrgFor finds a mailbox's organisation: by org name (case-insensitive; an
// org name the file does not know is an error, unless an organisation is a
// catch-all),
// else by the address's domain, else the default. The error names the
// domain but never the address.
func (f *File) OrgFor(org, address string) (*Org, error) {
	if org != "" {
		for i := range f.Orgs {
			if strings.EqualFold(f.Orgs[i].Name, org) {
				return &f.Orgs[i], nil
			}
		}
		for i := range f.Orgs {
			if f.Orgs[i].CatchAll {
				return &f.Orgs[i], nil
			}
		}
		// A mailbox named for an organisation the file does not know is
		// never handed another organisation's servers and credentials.
		return nil, fmt.Errorf("organisation %q is not in %s", org, f.Path)
	}
	domain := ""
	if at := strings.LastIndexByte(address, '@'); at >= 0 {
		domain = strings.ToLower(address[at+1:])
	}
	if domain != "" {
		for i := range f.Orgs {
			if slices.Contains(f.Orgs[i].Domains, domain) {
				return &f.Orgs[i], nil
			}
		}
	}
	for i := range f.Orgs {
		if f.Orgs[i].Default {
			return &f.Orgs[i], nil
		}
	}
	if domain == "" {
		return nil, fmt.Errorf("no organisation in %s matches org %q or the address's domain (the address has none), and none is the default", f.Path, org)
	}
	return nil, fmt.Errorf("no organisation in %s matches org %q or the address's domain %q, and none is the default", f.Path, org, domain)
}

// TaskQueueProblem says what is wrong with a task queue name, or "".
func TaskQueueProblem(q string) string {
	switch {
	case strings.TrimSpace(q) == "":
		return "must not be empty"
	case len(q) > 200:
		return "is longer than 200 bytes"
	case strings.ContainsFunc(q, func(r rune) bool { return r <= ' ' || r == 0x7f || unicode.IsSpace(r) || !unicode.IsPrint(r) }):
		return fmt.Sprintf("%q holds a space or a control character", q)
	}
	return ""
}
