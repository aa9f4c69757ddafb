// Package connect is the one place mailwave builds a Temporal client: the
// worker, the starter, the benchmarks and the tests all get their
// client.Options from Options (the test kit hands them to the dev server it
// starts, the rest dial through Dial).
// The flags that fill it are its own: address, namespace, identity, TLS
// (server CA, client certificate for mTLS, server name), API key, the
// payload codec's key ring, and logging. A worker also hands it its metrics
// handler (worker/registry), so the SDK's own metrics go where
// mailwave's do.
package connect

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"time"

	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.uber.org/zap"

	"mailwave/codec"
	"mailwave/internal/secretfile"
	"mailwave/internal/tlsconf"
)

// Options say where the Temporal server is and how to talk to it.
type Options struct {
	Address   string
	Namespace string
	// Identity names this process in the server's history (who started or
	// signalled a workflow, which worker ran a task); empty means
	// user@host.
	Identity    string
	DialTimeout time.Duration

	// TLS to the frontend: on when TLS is set or any of the other TLS
	// settings, or an API key, is given.
	TLS           bool
	TLSCA         string // PEM CA bundle trusted besides the system's
	TLSCert       string // client certificate (mTLS), PEM
	TLSKey        string // its private key, PEM, mode 0600
	TLSServerName string // the name the server's certificate must carry
	// APIKey is sent as a bearer token on every call (Temporal Cloud, or a
	// cluster with an authorizer). Give it in $MAILWAVE_API_KEY rather than
	// on the command line; better, in APIKeyFile.
	APIKey string
	// APIKeyFile holds the API key or mailwave access token (`starter access
	// token --out`), mode 0600. It is read again when it changes, so a
	// renewed token is taken up without a restart.
	APIKeyFile string

	// CodecKeyFile is the payload codec's key ring (codec.LoadKeyFile);
	// empty means $MAILWAVE_CODEC_KEYS.
	CodecKeyFile string
	// Keys, when set, is the key ring itself (tests, and callers that load
	// it once); it wins over CodecKeyFile.
	Keys *codec.KeyRing
	// Plaintext turns the payload codec off. No flag sets it: it exists so
	// that the privacy tests can prove they notice plaintext.
	Plaintext bool
	// AcceptPlainPayloads lets the codec read a payload that is not
	// encrypted (codec.Codec.AcceptingPlain): only for workflows whose
	// histories were recorded before encryption was on. Without it a plain
	// payload is refused, so a workflow started by a client without the key
	// fails at once (codec.ErrNotEncrypted).
	AcceptPlainPayloads bool

	// Metrics, when set, receives the client's and its workers' metrics
	// (task slots, schedule-to-start latency, requests, and what workflows
	// emit through workflow.GetMetricsHandler): the handler of a worker's
	// worker/registry. Nil is none.
	Metrics client.MetricsHandler

	Log LogOptions
}

// AddFlags adds the connection and logging flags.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Address, "temporal-address", client.DefaultHostPort, "Temporal frontend host:port")
	fs.StringVar(&o.Namespace, "namespace", client.DefaultNamespace, "Temporal namespace")
	fs.StringVar(&o.Identity, "identity", "", "who this is in Temporal's history (default user@host)")
	fs.DurationVar(&o.DialTimeout, "dial-timeout", 10*time.Second, "how long to wait for the Temporal server")
	fs.BoolVar(&o.TLS, "tls", false, "connect with TLS (implied by the other --tls-* flags, --api-key and --api-key-file)")
	fs.StringVar(&o.TLSCA, "tls-ca", "", "PEM CA bundle to trust for the Temporal frontend, besides the system's")
	fs.StringVar(&o.TLSCert, "tls-cert", "", "client certificate (PEM) for mTLS to the Temporal frontend")
	fs.StringVar(&o.TLSKey, "tls-key", "", "the client certificate's private key (PEM, mode 0600)")
	fs.StringVar(&o.TLSServerName, "tls-server-name", "", "the name the frontend's certificate must carry (default: the address's host)")
	fs.StringVar(&o.APIKey, "api-key", "", "API key sent as a bearer token (prefer --api-key-file)")
	fs.StringVar(&o.APIKeyFile, "api-key-file", "", "file (mode 0600) holding the API key or access token sent as a bearer token (`starter access token --out`); re-read when it changes")
	fs.StringVar(&o.CodecKeyFile, "codec-key-file", "", "payload encryption key ring (ID=BASE64 lines, first is current, mode 0600; default $"+codec.KeysEnv+")")
	fs.BoolVar(&o.AcceptPlainPayloads, "accept-plain-payloads", false, "read payloads that are not encrypted (only while workflows recorded before encryption still run); by default they are refused")
	o.Log.AddFlags(fs)
}

// ClientOptions returns the client options for these settings, logging
// through logger: the codec on payloads and failures, TLS, the API key and
// the metrics handler. HostPort is left empty when Address is (a dev
// server on a free port sets its own).
func (o Options) ClientOptions(logger tlog.Logger) (client.Options, error) {
	ns := o.Namespace
	if ns == "" {
		ns = client.DefaultNamespace
	}
	opts := client.Options{
		HostPort:  o.Address,
		Namespace: ns,
		Identity:  o.identity(),
		Logger:    logger,
		// Nil is the SDK's no-op handler.
		MetricsHandler: o.Metrics,
	}
	if !o.Plaintext {
		keys := o.Keys
		if keys == nil {
			var err error
			if keys, err = codec.FromEnvOrFile(o.CodecKeyFile); err != nil {
				return client.Options{}, err
			}
		}
		c := codec.New(keys)
		if o.AcceptPlainPayloads {
			c = c.AcceptingPlain()
		}
		opts.DataConverter = codec.NewDataConverter(c)
		opts.Interceptors = append(opts.Interceptors, codec.Interceptor(c))
		opts.FailureConverter = codec.FailureConverter(opts.DataConverter)
	}
	tlsConf, err := o.tlsConfig()
	if err != nil {
		return client.Options{}, err
	}
	opts.ConnectionOptions.TLS = tlsConf
	switch {
	case o.APIKey != "" && o.APIKeyFile != "":
		return client.Options{}, errors.New("--api-key and --api-key-file: give one (the file is better: it keeps the key off the command line and the environment)")
	case o.APIKey != "":
		if tlsConf == nil {
			return client.Options{}, errors.New("--api-key needs TLS: an API key is never sent in the clear")
		}
		opts.Credentials = client.NewAPIKeyStaticCredentials(o.APIKey)
	case o.APIKeyFile != "":
		if tlsConf == nil {
			return client.Options{}, errors.New("--api-key-file needs TLS: an API key is never sent in the clear")
		}
		kf := &keyFile{path: o.APIKeyFile}
		if _, err := kf.key(); err != nil {
			return client.Options{}, err
		}
		opts.Credentials = client.NewAPIKeyDynamicCredentials(func(context.Context) (string, error) { return kf.key() })
	}
	return opts, nil
}

// identity is Identity, or user@host: the operator's name in a wave's
// history, so it says who paused, resumed or cancelled it.
func (o Options) identity() string {
	if o.Identity != "" {
		return o.Identity
	}
	name := "unknown"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return fmt.Sprintf("%s@%s:%d", name, host, os.Getpid())
}

// tlsConfig is nil for a plain connection.
func (o Options) tlsConfig() (*tls.Config, error) {
	if !o.TLS && o.TLSCA == "" && o.TLSCert == "" && o.TLSKey == "" && o.TLSServerName == "" && o.APIKey == "" && o.APIKeyFile == "" {
		return nil, nil
	}
	pool, err := tlsconf.CertPool(o.TLSCA)
	if err != nil {
		return nil, fmt.Errorf("--tls-ca: %w", err)
	}
	conf := &tls.Config{RootCAs: pool, ServerName: o.TLSServerName, MinVersion: tls.VersionTLS12}
	if conf.ServerName == "" {
		if host, _, err := net.SplitHostPort(o.Address); err == nil {
			conf.ServerName = host
		}
	}
	switch {
	case o.TLSCert != "" && o.TLSKey != "":
		if err := secretfile.Check(o.TLSKey); err != nil {
			return nil, fmt.Errorf("--tls-key: %w", err)
		}
		cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	case o.TLSCert != "" || o.TLSKey != "":
		return nil, errors.New("--tls-cert and --tls-key go together: give both for mTLS, or neither")
	}
	return conf, nil
}

// ErrUnreachable is wrapped by Dial's error when the server did not answer.
var ErrUnreachable = errors.New("cannot reach the Temporal server")

// Dial connects to Temporal and checks the server answers, so an unreachable
// server is one clear error rather than a hang.
func (o Options) Dial(ctx context.Context, logger tlog.Logger) (client.Client, error) {
	opts, err := o.ClientOptions(logger)
	if err != nil {
		return nil, err
	}
	timeout := o.DialTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("%w at %s (namespace %q): %w", ErrUnreachable, o.Address, opts.Namespace, err)
	}
	return c, nil
}

// Connect builds the logger from the logging options and dials with it. The
// zap logger is returned for the caller's own logging; sync it at exit.
func (o Options) Connect(ctx context.Context) (client.Client, *zap.Logger, error) {
	z, logger, err := o.Log.Build()
	if err != nil {
		return nil, nil, err
	}
	c, err := o.Dial(ctx, logger)
	if err != nil {
		return nil, z, err
	}
	return c, z, nil
}
