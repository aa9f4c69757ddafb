// Command codecserver decodes (and encodes) mailwave's payloads for the
// Temporal UI and CLI, with the same key ring as the workers. Every request
// needs the token: the CLI sends it as --codec-auth "Bearer TOKEN"; a
// browser signs in once at /login and the UI, with "include cross-origin
// credentials" on, sends the session cookie.
//
// Every flag can also be set in the environment (--listen is
// MAILWAVE_LISTEN); the token comes from --token-file or
// $MAILWAVE_CODEC_TOKEN, the key ring from --codec-key-file or
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
	"mailwave/internal/cliutil"
	"mailwave/internal/connect"
	"mailwave/internal/secretfile"
)

// TokenEnv holds the token when no --token-file is given.
const TokenEnv = "MAILWAVE_CODEC_TOKEN"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "codecserver:", err)
		os.Exit(1)
	}
}

type options struct {
	listen     string
	namespaces []string
	origins    []string
	tokenFile  string
	keyFile    string
	httpsCert  string
	httpsKey   string
	log        connect.LogOptions
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
	f.StringVar(&o.tokenFile, "token-file", "", "file holding the bearer token(s), one a line, mode 0600 (default $"+TokenEnv+")")
	f.StringVar(&o.keyFile, "codec-key-file", "", "the payload key ring, as the workers' (default $"+codec.KeysEnv+")")
	f.StringVar(&o.httpsCert, "https-cert", "", "serve HTTPS with this certificate (PEM); the session cookie is then Secure")
	f.StringVar(&o.httpsKey, "https-key", "", "the HTTPS certificate's private key (PEM, mode 0600)")
	o.log.AddFlags(f)
	return cmd
}

// tokens reads the accepted tokens.
func (o options) tokens() ([]string, error) {
	text := os.Getenv(TokenEnv)
	if o.tokenFile != "" {
		b, err := secretfile.Read(o.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		text = string(b)
	}
	var out []string
	for line := range strings.Lines(text) {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no token: give --token-file or set $%s (every request must carry one)", TokenEnv)
	}
	return out, nil
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
	tokens, err := o.tokens()
	if err != nil {
		return err
	}
	if (o.httpsCert == "") != (o.httpsKey == "") {
		return errors.New("--https-cert and --https-key go together")
	}
	if o.httpsKey != "" {
		if err := secretfile.Check(o.httpsKey); err != nil {
			return fmt.Errorf("--https-key: %w", err)
		}
	}
	h, err := codecserver.New(codecserver.Options{
		Codec: codec.New(keys).AcceptingPlain(), Namespaces: o.namespaces, Origins: o.origins, Tokens: tokens,
		SecureCookie: o.httpsCert != "", Logger: z,
	})
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	if host, _, _ := net.SplitHostPort(lis.Addr().String()); o.httpsCert == "" && !net.ParseIP(host).IsLoopback() {
		z.Warn("INSECURE: the codec server listens beyond loopback over plain HTTP: the token and decoded payloads cross the network in clear; give --https-cert and --https-key",
			zap.String("address", lis.Addr().String()))
	}
	z.Info("codec server listening", zap.String("address", lis.Addr().String()), zap.Strings("namespaces", o.namespaces),
		zap.Strings("uiOrigins", o.origins), zap.Strings("keys", keys.IDs()), zap.Bool("https", o.httpsCert != ""))
	done := make(chan error, 1)
	go func() {
		if o.httpsCert != "" {
			done <- srv.ServeTLS(lis, o.httpsCert, o.httpsKey)
		} else {
			done <- srv.Serve(lis)
		}
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shut)
	}
}
