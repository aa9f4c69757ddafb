package workerapp

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"mailwave/contract"
	"mailwave/internal/tlsconf"
	"mailwave/mail/adapt"
	"mailwave/mail/graph"
	"mailwave/mail/graphcopy"
	"mailwave/mail/imapcopy"
	"mailwave/mail/notices"
	"mailwave/mail/outbox"
	"mailwave/mail/port"
	"mailwave/mail/route"
	"mailwave/mail/sim"
	"mailwave/mail/smtpnotify"
	"mailwave/worker/config"

	"go.uber.org/zap"
)

// orgPorts are one organisation's real connectors.
type orgPorts struct {
	copier   port.Copier
	notifier port.Notifier
	router   port.Router
	// rate is the copier's adaptive rate towards the target, for the
	// metrics; nil when the copier has none (a simulated estate without a
	// tenant limit).
	rate *adapt.Rate
}

// orgs sends each mailbox to its organisation's connectors, as the
// configuration names them. It is the Copier, Notifier and Router of every
// worker: one built from a configuration file (--config) or from its flags
// (one default organisation on the simulated estate and an outbox).
type orgs struct {
	file  *config.File
	ports map[string]*orgPorts // by organisation name
	order []string             // organisation names in file order
	// routeQueue is the task queue of a routing host's worker, "" for a
	// worker of the fleet.
	routeQueue string
	// warnings are settings that work but weaken security (certificate
	// checks off), for the worker to log loudly at start-up.
	warnings []string
}

// warner is a connector that reports weakened settings.
type warner interface{ Warnings() []string }

var (
	_ port.Copier   = (*orgs)(nil)
	_ port.Notifier = (*orgs)(nil)
	_ port.Router   = (*orgs)(nil)

	_ port.RoutingHosts = (*orgs)(nil)
	_ port.Preflighter  = (*orgs)(nil)
)

// buildPorts builds every organisation's connectors, so that a mistake
// shows at start-up, not at a mailbox's T. It is the one place the ports
// are made.
//
// routeQueue is "" for a worker of the fleet, which builds every
// organisation's connectors except the routers that live on a routing host
// (router.task_queue). A routing host's worker (--route-only) names its
// task queue: it builds only the notifier (whose ledger the cutover
// checks) and router of the organisations that cut over there.
func buildPorts(f *config.File, routeQueue string, log *zap.Logger) (*orgs, error) {
	secrets, err := f.Secrets()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	o := &orgs{file: f, ports: map[string]*orgPorts{}, routeQueue: routeQueue}
	env := buildEnv{secrets: secrets, log: log, tokens: graph.NewTokens(context.Background())}
	for _, org := range f.Orgs {
		if routeQueue != "" && org.Router.TaskQueue != routeQueue {
			continue
		}
		p, err := buildOrg(org, env, routeQueue != "")
		if err != nil {
			return nil, fmt.Errorf("%s: organisation %q: %w", f.Path, org.Name, err)
		}
		o.ports[org.Name] = p
		o.order = append(o.order, org.Name)
		for _, c := range []any{p.copier, p.notifier, p.router} {
			if w, ok := c.(warner); ok {
				for _, msg := range w.Warnings() {
					o.warnings = append(o.warnings, fmt.Sprintf("organisation %q: %s", org.Name, msg))
				}
			}
		}
	}
	if routeQueue != "" && len(o.order) == 0 {
		return nil, fmt.Errorf("%s: no organisation cuts over on task queue %q (router.task_queue)", f.Path, routeQueue)
	}
	return o, nil
}

// partError says which part of an organisation's connectors failed to
// build, so that a worker configured by flags can name the flag.
type partError struct {
	part string // "templates", "notifier", "sim", "copier" or "router"
	err  error
}

func (e *partError) Error() string {
	if e.part == "sim" || e.part == "copier" {
		return e.err.Error() // the estate's and the copier's errors name themselves
	}
	return e.part + ": " + e.err.Error()
}
func (e *partError) Unwrap() error { return e.err }

// buildEnv is what every organisation's connectors are built with: the
// secrets, the logger, and the worker's one cache of app-only tokens (one
// per tenant, application and scope, shared by every organisation).
type buildEnv struct {
	secrets *config.Secrets
	log     *zap.Logger
	tokens  *graph.Tokens
}

func buildOrg(org config.Org, env buildEnv, routeOnly bool) (*orgPorts, error) {
	secrets := env.secrets
	p := &orgPorts{}
	var err error
	if p.notifier, err = buildNotifier(org.Notifier, secrets); err != nil {
		return nil, err
	}
	switch {
	case routeOnly:
		if p.router, err = buildRouter(org.Router, secrets); err != nil {
			return nil, &partError{"router", err}
		}
		return p, nil
	case org.Router.TaskQueue != "":
		// The router lives on its host; this worker never touches it.
		p.router = elsewhere{org: org.Name, queue: org.Router.TaskQueue}
	}
	build, ok := copierKinds[org.Copier.Kind]
	if !ok {
		return nil, &partError{"copier", fmt.Errorf("organisation %s: no copier of kind %q (kinds: %s)", org.Name, org.Copier.Kind, strings.Join(config.CopierKinds, ", "))}
	}
	c, err := build(org, env)
	if err != nil {
		return nil, err
	}
	p.copier, p.rate = c.copier, c.rate
	if p.router != nil {
		return p, nil
	}
	if estate := c.estate; org.Router.Kind == "sim" && estate != nil && org.Router.Sim.Dir == org.Copier.Sim.Dir {
		// One estate is both copier and router.
		p.router = estate
	} else if p.router, err = buildRouter(org.Router, secrets); err != nil {
		return nil, &partError{"router", err}
	}
	return p, nil
}

// builtCopier is a copier built for an organisation: the port, the rate
// it sends through (sampled for the metrics), and the simulated estate
// when it is one (which may serve as the router too).
type builtCopier struct {
	copier port.Copier
	rate   *adapt.Rate
	estate *sim.Estate
}

// copierKinds builds each kind of copier the configuration may name
// (config.CopierKinds): a new connector is one line here.
var copierKinds = map[string]func(org config.Org, env buildEnv) (builtCopier, error){
	config.CopierIMAP:  buildIMAPCopier,
	config.CopierGraph: buildGraphCopier,
	config.CopierSim:   buildSimCopier,
}

// buildIMAPCopier makes the IMAP copier between the organisation's source
// and target. It sends through a rate that adapts to the target's
// refusals, under the configured bytes per second as a ceiling.
func buildIMAPCopier(org config.Org, env buildEnv) (builtCopier, error) {
	log := env.log
	rate := adapt.New(adapt.Options{Name: org.Name, Ceiling: float64(org.Copy.BytesPerSecond), Logger: log})
	src, err := endpoint(org.Copier.Source)
	if err != nil {
		return builtCopier{}, &partError{"copier", fmt.Errorf("source: %w", err)}
	}
	tgt, err := endpoint(org.Copier.Target)
	if err != nil {
		return builtCopier{}, &partError{"copier", fmt.Errorf("target: %w", err)}
	}
	creds, err := credentials(org, env)
	if err != nil {
		return builtCopier{}, &partError{"copier", err}
	}
	c, err := imapcopy.New(imapcopy.Options{
		Source: src, Target: tgt,
		Credentials:     creds,
		Window:          org.Copy.Window,
		MaxMessageBytes: org.Copy.MaxMessageBytes,
		BadItemLimit:    org.Copy.BadItemLimit,
		FolderMap:       org.Copy.FolderMap,
		Rate:            rate,
	})
	if err != nil {
		return builtCopier{}, &partError{"copier", err}
	}
	return builtCopier{copier: c, rate: rate}, nil
}

// buildGraphCopier makes the copier from the organisation's IMAP source
// into Exchange Online through Graph, keeping the configured (by default
// the documented) limits per mailbox, under an adaptive rate for the
// tenant's own.
func buildGraphCopier(org config.Org, env buildEnv) (builtCopier, error) {
	log := env.log
	g := org.Copier.Graph
	hc, err := httpClient(g.CAFile)
	if err != nil {
		return builtCopier{}, &partError{"copier", fmt.Errorf("graph: %w", err)}
	}
	tokens, err := appTokens(g.App, hc, graph.ScopeGraph, env)
	if err != nil {
		return builtCopier{}, &partError{"copier", fmt.Errorf("graph: %w", err)}
	}
	budgets, err := graph.NewBudgets(graph.Limits{Concurrent: g.Concurrent, UploadBytes: g.UploadBytes, UploadWindow: g.UploadWindow,
		Requests: g.Requests, RequestWindow: g.RequestWindow, Margin: graph.DefaultLimits.Margin})
	if err != nil {
		return builtCopier{}, &partError{"copier", err}
	}
	src, err := endpoint(org.Copier.Source)
	if err != nil {
		return builtCopier{}, &partError{"copier", fmt.Errorf("source: %w", err)}
	}
	creds, err := credentials(org, env)
	if err != nil {
		return builtCopier{}, &partError{"copier", err}
	}
	reader, err := imapcopy.NewReader(src, creds)
	if err != nil {
		return builtCopier{}, &partError{"copier", err}
	}
	rate := adapt.New(adapt.Options{Name: org.Name, Ceiling: float64(org.Copy.BytesPerSecond), Logger: log})
	client := graph.NewClient(hc, g.GraphURL, tokens, budgets)
	client.OnRefused = rate.Refused
	c, err := graphcopy.New(graphcopy.Options{Source: reader, Rate: rate, BadItemLimit: org.Copy.BadItemLimit, FolderMap: org.Copy.FolderMap,
		MaxMessageBytes: org.Copy.MaxMessageBytes, Graph: client})
	if err != nil {
		return builtCopier{}, &partError{"copier", err}
	}
	return builtCopier{copier: c, rate: rate}, nil
}

// buildSimCopier opens the simulated estate as the copier.
func buildSimCopier(org config.Org, env buildEnv) (builtCopier, error) {
	log := env.log
	estate, err := openSim(org.Copier.Sim, log)
	if err != nil {
		return builtCopier{}, &partError{"sim", err}
	}
	return builtCopier{copier: estate, rate: estate.Rate(), estate: estate}, nil
}

// openSim opens the simulated estate with its settings.
func openSim(c config.Sim, log *zap.Logger) (*sim.Estate, error) {
	return sim.Open(c.Dir, sim.Options{
		TimeScale:             c.TimeScale,
		BytesPerSecond:        c.BytesPerSecond,
		TenantBytesPerSecond:  c.TenantBytesPerSecond,
		MailboxBytesPerSecond: c.MailboxBytesPerSecond,
		Logger:                log,
		Instant:               c.Instant,
		Faults: sim.Faults{
			TransientRate:      c.TransientRate,
			ThrottleRate:       c.ThrottleRate,
			ThrottleRetryAfter: c.ThrottleRetryAfter,
			NotFoundRate:       c.NotFoundRate,
		},
	})
}

func endpoint(c config.IMAP) (imapcopy.Endpoint, error) {
	conf := &tls.Config{InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // an operator's explicit choice
	if c.CAFile != "" {
		pool, err := tlsconf.CertPool(c.CAFile)
		if err != nil {
			return imapcopy.Endpoint{}, err
		}
		conf.RootCAs = pool
	}
	return imapcopy.Endpoint{Host: c.Host, Port: c.Port, Security: c.Security, TLS: conf}, nil
}

// httpClient is the client of an application's token requests (and of
// Graph's calls), trusting the extra CAs of caFile if given.
func httpClient(caFile string) (*http.Client, error) {
	hc := &http.Client{Timeout: 5 * time.Minute}
	if caFile != "" {
		pool, err := tlsconf.CertPool(caFile)
		if err != nil {
			return nil, err
		}
		hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, Proxy: http.ProxyFromEnvironment}
	}
	return hc, nil
}

// appTokens is the source of a configured application's app-only tokens
// for a scope, from the worker's one cache (env.tokens): its client
// secret looked up by name, or its certificate and key read, its token
// requests through hc.
func appTokens(a config.App, hc *http.Client, scope string, env buildEnv) (*graph.TokenSource, error) {
	app := graph.App{Tenant: a.Tenant, ClientID: a.ClientID, LoginURL: a.LoginURL, HTTP: hc}
	if a.CertificateFile != "" {
		pair, err := tls.LoadX509KeyPair(a.CertificateFile, a.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("the application's certificate: %w", err)
		}
		if app.Cert, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("the application's certificate: %w", err)
		}
		signer, ok := pair.PrivateKey.(crypto.Signer)
		if !ok {
			return nil, errors.New("the application's key cannot sign")
		}
		app.Key = signer
	} else {
		v, err := env.secrets.Lookup(a.ClientSecret)
		if err != nil {
			return nil, fmt.Errorf("the client secret %q: %w", a.ClientSecret, err)
		}
		app.Secret = v
	}
	return env.tokens.Source(app, scope)
}

// credentials finds a mailbox's login at copy time: the secrets are read
// here, in the worker, and never travel in a workflow's input or history.
// An xoauth2 login with an application (auth.app) takes a token from the
// worker's one cache at every login, so a copy that logs in again an hour
// on has a fresh one; a token the server refuses is dropped from the cache
// (Credentials.Invalidate) for the copier's one retry.
func credentials(org config.Org, env buildEnv) (imapcopy.CredentialsFunc, error) {
	secrets := env.secrets
	apps := map[imapcopy.Side]*graph.TokenSource{}
	for _, e := range []struct {
		side imapcopy.Side
		ep   config.IMAP
	}{{imapcopy.Source, org.Copier.Source}, {imapcopy.Target, org.Copier.Target}} {
		if e.ep.Auth.App == nil {
			continue
		}
		hc, err := httpClient(e.ep.Auth.App.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s: app: %w", e.side, err)
		}
		if apps[e.side], err = appTokens(*e.ep.Auth.App, hc, graph.ScopeIMAP, env); err != nil {
			return nil, fmt.Errorf("%s: app: %w", e.side, err)
		}
	}
	return func(ctx context.Context, side imapcopy.Side, m contract.MailboxRef) (imapcopy.Credentials, error) {
		ep := org.Copier.Source
		if side == imapcopy.Target {
			ep = org.Copier.Target
		}
		a := ep.Auth
		user, err := config.Expand(a.Username, m.Address)
		if err != nil {
			return imapcopy.Credentials{}, err
		}
		if src := apps[side]; src != nil {
			// The refusal of the application names its tenant, never
			// the mailbox.
			tok, err := src.Token(ctx)
			if err != nil {
				return imapcopy.Credentials{}, err
			}
			return imapcopy.Credentials{Mechanism: imapcopy.MechXOAuth2, Username: user, Token: tok.AccessToken,
				Invalidate: func() { src.Invalidate(tok) }}, nil
		}
		if a.MasterUser != "" {
			user += "*" + a.MasterUser
		}
		secretName := a.PasswordSecret
		if a.Mechanism == imapcopy.MechXOAuth2 {
			secretName = a.TokenSecret
		}
		name, err := config.Expand(secretName, m.Address)
		if err != nil {
			return imapcopy.Credentials{}, err
		}
		value, err := secrets.Lookup(name)
		if err != nil {
			// The name may be per user, so it can hold the address: say
			// which template, never which name.
			return imapcopy.Credentials{}, port.Permanent(contract.ErrTypeBadCredentials,
				"%s secret %q for mailbox %s is not set", side, strings.ReplaceAll(secretName, "@", "(at)"), m.Key)
		}
		c := imapcopy.Credentials{Mechanism: a.Mechanism, Username: user}
		if a.Mechanism == imapcopy.MechXOAuth2 {
			c.Token = value
		} else {
			c.Password = value
		}
		return c, nil
	}, nil
}

func buildNotifier(n config.Notifier, secrets *config.Secrets) (port.Notifier, error) {
	tpl, err := notices.Load(n.TemplatesDir)
	if err != nil {
		return nil, &partError{"templates", err}
	}
	nt, err := buildSender(n, tpl, secrets)
	if err != nil {
		return nil, &partError{"notifier", err}
	}
	return nt, nil
}

// buildSender makes the notifier of the configured kind.
func buildSender(n config.Notifier, tpl *notices.Templates, secrets *config.Secrets) (port.Notifier, error) {
	var err error
	switch n.Kind {
	case "smtp":
		var ledger smtpnotify.Ledger
		if n.SMTP.LedgerURL != "" {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			l, err := smtpnotify.OpenPostgresLedger(ctx, n.SMTP.LedgerURL)
			if err != nil {
				return nil, err
			}
			ledger = l
		}
		password := ""
		if n.SMTP.PasswordSecret != "" {
			if password, err = secrets.Lookup(n.SMTP.PasswordSecret); err != nil {
				return nil, err
			}
		}
		return smtpnotify.New(smtpnotify.Options{
			Host: n.SMTP.Host, Port: n.SMTP.Port, Security: n.SMTP.Security, CAFile: n.SMTP.CAFile,
			InsecureSkipVerify: n.SMTP.InsecureSkipVerify,
			Username:           n.SMTP.Username, Password: password, AuthMechanism: n.SMTP.AuthMechanism,
			From: n.From, AdminContact: n.AdminContact, Templates: tpl, LedgerDir: n.SMTP.LedgerDir, Ledger: ledger,
		})
	case "outbox":
		return outbox.New(outbox.Options{Dir: n.Outbox.Dir, From: n.From, AdminContact: n.AdminContact, Templates: tpl})
	}
	return nil, fmt.Errorf("unknown kind %q", n.Kind)
}

func buildRouter(r config.Router, secrets *config.Secrets) (port.Router, error) {
	switch r.Kind {
	case "transport_map":
		return route.NewTransportMap(route.TransportMapOptions{
			Path: r.TransportMap.Path, NextHop: r.TransportMap.NextHop,
			Command: r.TransportMap.Command, CommandTimeout: r.TransportMap.CommandTimeout,
		})
	case "webhook":
		header := map[string]string{}
		for h, name := range r.Webhook.HeaderSecrets {
			v, err := secrets.Lookup(name)
			if err != nil {
				return nil, fmt.Errorf("webhook header %s: %w", h, err)
			}
			header[h] = v
		}
		return route.NewWebhook(route.WebhookOptions{
			URL: r.Webhook.URL, StatusURL: r.Webhook.StatusURL, Header: header,
			Attempts: r.Webhook.Attempts, Timeout: r.Webhook.Timeout,
		})
	case "sim":
		return openSim(r.Sim, nil)
	}
	return nil, fmt.Errorf("unknown kind %q", r.Kind)
}

// of finds a mailbox's organisation's connectors.
func (o *orgs) of(m contract.MailboxRef) (*orgPorts, error) {
	org, err := o.file.OrgFor(m.Org, m.Address)
	if err != nil {
		return nil, port.Permanent(contract.ErrTypeInvalidMailbox, "mailbox %s: %v", m.Key, err)
	}
	p, ok := o.ports[org.Name]
	if !ok {
		// A routing host's worker asked for an organisation that cuts over
		// elsewhere: the fleet's configuration and this host's disagree.
		// Retried, so that the cutover goes on once they are made to agree.
		where := "the fleet's workers"
		if org.Router.TaskQueue != "" {
			where = fmt.Sprintf("the routing host of task queue %q", org.Router.TaskQueue)
		}
		return nil, fmt.Errorf("mailbox %s: organisation %q cuts over on %s, not on this routing host (task queue %q)",
			m.Key, org.Name, where, o.routeQueue)
	}
	return p, nil
}

// CutoverQueue names the task queue of the mailbox's organisation's
// routing host, or "" where this worker cuts over itself.
func (o *orgs) CutoverQueue(m contract.MailboxRef) (string, error) {
	org, err := o.file.OrgFor(m.Org, m.Address)
	if err != nil {
		return "", port.Permanent(contract.ErrTypeInvalidMailbox, "mailbox %s: %v", m.Key, err)
	}
	return org.Router.TaskQueue, nil
}

// elsewhere is the router of an organisation whose routing lives on
// another host. A mailbox's cutover goes to that host's task queue, so this
// is reached only by a cutover begun before routing hosts existed and
// replayed here: it is retried, and an operator moves it on.
type elsewhere struct{ org, queue string }

func (e elsewhere) err(m contract.MailboxRef) error {
	return fmt.Errorf("mailbox %s: organisation %q cuts over on its routing host (task queue %q), not on this worker", m.Key, e.org, e.queue)
}

func (e elsewhere) Route(_ context.Context, m contract.MailboxRef) (port.Route, error) {
	return "", e.err(m)
}

func (e elsewhere) Cutover(_ context.Context, m contract.MailboxRef) error { return e.err(m) }

func (o *orgs) Copy(ctx context.Context, req port.CopyRequest) (contract.CopyStats, error) {
	p, err := o.of(req.Mailbox)
	if err != nil {
		return contract.CopyStats{}, err
	}
	return p.copier.Copy(ctx, req)
}

// Preflight checks a mailbox before its notice with its organisation's
// copier (every kind has a preflight; one without would leave the mailbox
// unchecked: port.ErrNoPreflight).
func (o *orgs) Preflight(ctx context.Context, m contract.MailboxRef) (contract.Preflight, error) {
	p, err := o.of(m)
	if err != nil {
		return contract.Preflight{}, err
	}
	pf, ok := p.copier.(port.Preflighter)
	if !ok {
		return contract.Preflight{}, port.ErrNoPreflight
	}
	return pf.Preflight(ctx, m)
}

func (o *orgs) Send(ctx context.Context, n port.Notice) (bool, error) {
	p, err := o.of(n.Mailbox)
	if err != nil {
		return false, err
	}
	return p.notifier.Send(ctx, n)
}

// Sent asks every organisation's notifier, since only the key is known: a
// notice is sent if any of them has it.
func (o *orgs) Sent(ctx context.Context, key string, kind contract.NoticeKind) (bool, error) {
	var errs []error
	for _, name := range o.order {
		sent, err := o.ports[name].notifier.Sent(ctx, key, kind)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if sent {
			return true, nil
		}
	}
	return false, errors.Join(errs...)
}

func (o *orgs) Route(ctx context.Context, m contract.MailboxRef) (port.Route, error) {
	p, err := o.of(m)
	if err != nil {
		return "", err
	}
	return p.router.Route(ctx, m)
}

func (o *orgs) Cutover(ctx context.Context, m contract.MailboxRef) error {
	p, err := o.of(m)
	if err != nil {
		return err
	}
	return p.router.Cutover(ctx, m)
}
