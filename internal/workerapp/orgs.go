package workerapp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/time/rate"

	"mailwave/activities"
	"mailwave/internal/config"
	"mailwave/mail/imapcopy"
	"mailwave/mail/notices"
	"mailwave/mail/outbox"
	"mailwave/mail/route"
	"mailwave/mail/sim"
	"mailwave/mail/smtpnotify"
)

// orgPorts are one organisation's real connectors.
type orgPorts struct {
	copier   activities.Copier
	notifier activities.Notifier
	router   activities.Router
}

// orgs sends each mailbox to its organisation's connectors, as the
// configuration file names them. It is the Copier, Notifier and Router of a
// worker started with --config.
type orgs struct {
	file  *config.File
	ports map[string]*orgPorts // by organisation name
	order []string             // organisation names in file order
}

var (
	_ activities.Copier   = (*orgs)(nil)
	_ activities.Notifier = (*orgs)(nil)
	_ activities.Router   = (*orgs)(nil)
)

// openOrgs loads the configuration file and builds every organisation's
// connectors, so that a mistake shows at start-up, not at a mailbox's T.
func openOrgs(path string) (*orgs, error) {
	f, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	secrets, err := f.Secrets()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	o := &orgs{file: f, ports: map[string]*orgPorts{}}
	for _, org := range f.Orgs {
		p, err := buildOrg(org, secrets)
		if err != nil {
			return nil, fmt.Errorf("%s: organisation %q: %w", path, org.Name, err)
		}
		o.ports[org.Name] = p
		o.order = append(o.order, org.Name)
	}
	return o, nil
}

func buildOrg(org config.Org, secrets *config.Secrets) (*orgPorts, error) {
	p := &orgPorts{}
	src, err := endpoint(org.Source)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	tgt, err := endpoint(org.Target)
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	var limiter *rate.Limiter
	if bps := org.Copy.BytesPerSecond; bps > 0 {
		limiter = rate.NewLimiter(rate.Limit(bps), int(min(max(bps/10, 64<<10), 4<<20)))
	}
	p.copier, err = imapcopy.New(imapcopy.Options{
		Source: src, Target: tgt,
		Credentials:     credentials(org, secrets),
		Window:          org.Copy.Window,
		MaxMessageBytes: org.Copy.MaxMessageBytes,
		BadItemLimit:    org.Copy.BadItemLimit,
		FolderMap:       org.Copy.FolderMap,
		Limiter:         limiter,
	})
	if err != nil {
		return nil, err
	}
	if p.notifier, err = buildNotifier(org.Notifier, secrets); err != nil {
		return nil, fmt.Errorf("notifier: %w", err)
	}
	if p.router, err = buildRouter(org.Router, secrets); err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	return p, nil
}

func endpoint(c config.IMAP) (imapcopy.Endpoint, error) {
	conf := &tls.Config{InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // an operator's explicit choice
	if c.CAFile != "" {
		pool, err := certPool(c.CAFile)
		if err != nil {
			return imapcopy.Endpoint{}, err
		}
		conf.RootCAs = pool
	}
	return imapcopy.Endpoint{Host: c.Host, Port: c.Port, Security: c.Security, TLS: conf}, nil
}

func certPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificates", file)
	}
	return pool, nil
}

// credentials finds a mailbox's login at copy time: the secrets are read
// here, in the worker, and never travel in a workflow's input or history.
func credentials(org config.Org, secrets *config.Secrets) imapcopy.CredentialsFunc {
	return func(_ context.Context, side imapcopy.Side, m activities.MailboxRef) (imapcopy.Credentials, error) {
		ep := org.Source
		if side == imapcopy.Target {
			ep = org.Target
		}
		a := ep.Auth
		user, err := config.Expand(a.Username, m.Address)
		if err != nil {
			return imapcopy.Credentials{}, err
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
			return imapcopy.Credentials{}, activities.Permanent(activities.ErrTypeBadCredentials,
				"%s secret %q for mailbox %s is not set", side, strings.ReplaceAll(secretName, "@", "(at)"), m.Key)
		}
		c := imapcopy.Credentials{Mechanism: a.Mechanism, Username: user}
		if a.Mechanism == imapcopy.MechXOAuth2 {
			c.Token = value
		} else {
			c.Password = value
		}
		return c, nil
	}
}

func buildNotifier(n config.Notifier, secrets *config.Secrets) (activities.Notifier, error) {
	tpl, err := notices.Load(n.TemplatesDir)
	if err != nil {
		return nil, err
	}
	switch n.Kind {
	case "smtp":
		password := ""
		if n.SMTP.PasswordSecret != "" {
			if password, err = secrets.Lookup(n.SMTP.PasswordSecret); err != nil {
				return nil, err
			}
		}
		return smtpnotify.New(smtpnotify.Options{
			Host: n.SMTP.Host, Port: n.SMTP.Port, Security: n.SMTP.Security, CAFile: n.SMTP.CAFile,
			Username: n.SMTP.Username, Password: password, AuthMechanism: n.SMTP.AuthMechanism,
			From: n.From, AdminContact: n.AdminContact, Templates: tpl, LedgerDir: n.SMTP.LedgerDir,
		})
	case "outbox":
		return outbox.New(outbox.Options{Dir: n.Outbox.Dir, From: n.From, AdminContact: n.AdminContact, Templates: tpl})
	}
	return nil, fmt.Errorf("unknown kind %q", n.Kind)
}

func buildRouter(r config.Router, secrets *config.Secrets) (activities.Router, error) {
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
		return sim.Open(r.Sim.Dir, sim.Options{})
	}
	return nil, fmt.Errorf("unknown kind %q", r.Kind)
}

// of finds a mailbox's organisation's connectors.
func (o *orgs) of(m activities.MailboxRef) (*orgPorts, error) {
	org, err := o.file.OrgFor(m.Org, m.Address)
	if err != nil {
		return nil, activities.Permanent(activities.ErrTypeInvalidMailbox, "mailbox %s: %v", m.Key, err)
	}
	return o.ports[org.Name], nil
}

func (o *orgs) Copy(ctx context.Context, req activities.CopyRequest) (activities.CopyStats, error) {
	p, err := o.of(req.Mailbox)
	if err != nil {
		return activities.CopyStats{}, err
	}
	return p.copier.Copy(ctx, req)
}

func (o *orgs) Send(ctx context.Context, n activities.Notice) (bool, error) {
	p, err := o.of(n.Mailbox)
	if err != nil {
		return false, err
	}
	return p.notifier.Send(ctx, n)
}

// Sent asks every organisation's notifier, since only the key is known: a
// notice is sent if any of them has it.
func (o *orgs) Sent(ctx context.Context, key string, kind activities.NoticeKind) (bool, error) {
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

func (o *orgs) Route(ctx context.Context, m activities.MailboxRef) (activities.Route, error) {
	p, err := o.of(m)
	if err != nil {
		return "", err
	}
	return p.router.Route(ctx, m)
}

func (o *orgs) Cutover(ctx context.Context, m activities.MailboxRef) error {
	p, err := o.of(m)
	if err != nil {
		return err
	}
	return p.router.Cutover(ctx, m)
}
