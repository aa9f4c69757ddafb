// Command codecserver decodes (and encodes) mailwave's payloads for the
// Temporal UI and CLI, with the same key ring as the workers. Every request
// is a person's: their own access token with the decoder role (starter
// access token --role decoder --for NAME), verified against the public key
// (--public-key) and the revocation list (--revocations, read again when it
// changes: starter access revoke ends a person's sessions on their next
// request). The CLI sends the token as --codec-auth "Bearer TOKEN"; a
// browser signs in once at /login and the UI, with "include cross-origin
// credentials" on, sends the session cookie. Every decode is recorded in
// the audit file (--audit-file), before its answer is sent.
//
// Every flag can also be set in the environment (--listen is
// MAILWAVE_LISTEN); the key ring comes from --codec-key-file or
// $MAILWAVE_CODEC_KEYS.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"mailwave/codec"
	"mailwave/codec/codecserver"
	"mailwave/internal/accesstoken"
	"mailwave/internal/cliutil"
	"mailwave/internal/connect"
	"mailwave/internal/secretfile"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "codecserver:", err)
		os.Exit(1)
	}
}

type options struct {
	listen      string
	namespaces  []string
	origins     []string
	publicKey   string
	revocations string
	auditFile   string
	maxSession  time.Duration
	sameSite    string
	keyFile     string
	httpsCert   string
	httpsKey    string
	log         connect.LogOptions
}

func newRootCmd() *cobra.Command {
	var o options
	cmd := &cobra.Command{
		Use:           "codecserver",
		Short:         "Serve mailwave's payload codec to the Temporal UI and CLI",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		PreRunE:       func(cmd *cobra.Command, _ []string) error { return cliutil.BindEnv(cmd.Flags()) },
		RunE:          func(cmd *cobra.Command, _ []string) error { return run(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", "127.0.0.1:8234", "host:port to serve on")
	f.StringSliceVar(&o.namespaces, "namespace", []string{"default"}, "Temporal namespaces served (repeat, or comma-separated)")
	f.StringSliceVar(&o.origins, "ui-origin", []string{"http://localhost:8233"}, "the Temporal UI's origin, allowed by CORS (repeat, or comma-separated)")
	f.StringVar(&o.publicKey, "public-key", "", "the access tokens' public key (PEM; starter access key new writes it)")
	f.StringVar(&o.revocations, "revocations", "", "the revocation list (starter access key new makes it, starter access revoke writes it; it must be there)")
	f.StringVar(&o.auditFile, "audit-file", "", "append a record of every sign-in and decode here (JSON lines, mode 0600)")
	f.DurationVar(&o.maxSession, "max-session", codecserver.DefaultMaxSession, "a browser session ends after this long, or at its token's expiry if sooner")
	f.StringVar(&o.sameSite, "cookie-samesite", "strict", "the session cookie's SameSite: strict (the UI on the same site), lax, or none (the UI on another site; needs HTTPS)")
	f.StringVar(&o.keyFile, "codec-key-file", "", "the payload key ring, as the workers' (default $"+codec.KeysEnv+")")
	f.StringVar(&o.httpsCert, "https-cert", "", "serve HTTPS with this certificate (PEM); the session cookie is then Secure")
	f.StringVar(&o.httpsKey, "https-key", "", "the HTTPS certificate's private key (PEM, mode 0600)")
	o.log.AddFlags(f)
	return cmd
}

// verifier is the access tokens' verifier.
func (o options) verifier() (*accesstoken.Verifier, error) {
	if o.publicKey == "" {
		return nil, errors.New("no --public-key: every request must carry a person's access token, verified with the programme's public key")
	}
	pub, err := accesstoken.LoadPublicKey(o.publicKey)
	if err != nil {
		return nil, fmt.Errorf("--public-key: %w", err)
	}
	if o.revocations == "" {
		return nil, errors.New("no --revocations: name the revocation list (starter access revoke writes it), even if nobody is revoked yet")
	}
	if err := accesstoken.CheckRevocations(o.revocations); err != nil {
		return nil, fmt.Errorf("--revocations: %w", err)
	}
	return accesstoken.NewVerifier(pub, o.revocations), nil
}

func parseSameSite(s string) (http.SameSite, error) {
	switch strings.ToLower(s) {
	case "strict":
		return http.SameSiteStrictMode, nil
	case "lax":
		return http.SameSiteLaxMode, nil
	case "none":
		return http.SameSiteNoneMode, nil
	}
	return 0, fmt.Errorf("--cookie-samesite %q: want strict, lax or none", s)
}

func run(ctx context.Context, o options) error {
	z, _, err := o.log.Build()
	if err != nil {
		return err
	}
	defer func() { _ = z.Sync() }()
	keys, err := codec.FromEnvOrFile(o.keyFile)
	if err != nil {
		return err
	}
	verifier, err := o.verifier()
	if err != nil {
		return err
	}
	sameSite, err := parseSameSite(o.sameSite)
	if err != nil {
		return err
	}
	if o.auditFile == "" {
		return errors.New("no --audit-file: every decode is recorded")
	}
	audit, err := codecserver.OpenAudit(o.auditFile)
	if err != nil {
		return err
	}
	defer func() { _ = audit.Close() }()
	if (o.httpsCert == "") != (o.httpsKey == "") {
		return errors.New("--https-cert and --https-key go together")
	}
	if o.httpsKey != "" {
		if err := secretfile.Check(o.httpsKey); err != nil {
			return fmt.Errorf("--https-key: %w", err)
		}
	}
	h, err := codecserver.New(codecserver.Options{
		Codec: codec.New(keys).AcceptingPlain(), Namespaces: o.namespaces, Origins: o.origins,
		Verifier: verifier, Audit: audit, MaxSession: o.maxSession,
		SecureCookie: o.httpsCert != "", SameSite: sameSite, Logger: z,
	})
	if err != nil {
		return err
	}
	// SIGHUP reopens the audit file (after it was moved away to be archived).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	lis, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	if host, _, _ := net.SplitHostPort(lis.Addr().String()); o.httpsCert == "" && !net.ParseIP(host).IsLoopback() {
		z.Warn("INSECURE: the codec server listens beyond loopback over plain HTTP: access tokens, session cookies and decoded payloads cross the network in clear; give --https-cert and --https-key",
			zap.String("address", lis.Addr().String()))
	}
	z.Info("codec server listening", zap.String("address", lis.Addr().String()), zap.Strings("namespaces", o.namespaces),
		zap.Strings("uiOrigins", o.origins), zap.Strings("keys", keys.IDs()), zap.Bool("https", o.httpsCert != ""),
		zap.String("auditFile", o.auditFile), zap.String("revocations", o.revocations), zap.Duration("maxSession", o.maxSession))
	done := make(chan error, 1)
	go func() {
		if o.httpsCert != "" {
			done <- srv.ServeTLS(lis, o.httpsCert, o.httpsKey)
		} else {
			done <- srv.Serve(lis)
		}
	}()
	for {
		select {
		case err := <-done:
			return err
		case <-hup:
			if err := audit.Reopen(); err != nil {
				z.Error("reopening the audit file failed: records still go to the old one", zap.Error(err))
			} else {
				z.Info("audit file reopened", zap.String("auditFile", o.auditFile))
			}
			continue
		case <-ctx.Done():
			shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return srv.Shutdown(shut)
		}
	}
}
