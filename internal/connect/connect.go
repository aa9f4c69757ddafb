// Package connect is the one place mailwave builds a Temporal client: the
// worker, the starter, the benchmarks and the tests all get their
// client.Options from Options, and dial through Dial. The flags that fill
// it (address, namespace, identity, dial timeout, logging) are its own.
package connect

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.uber.org/zap"
)

// Options say where the Temporal server is and how to talk to it.
type Options struct {
	Address   string
	Namespace string
	// Identity names this process in the server's history (who started a
	// workflow, which worker ran a task); empty means the SDK's default,
	// pid@host.
	Identity    string
	DialTimeout time.Duration
	Log         LogOptions
}

// AddFlags adds the connection and logging flags.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Address, "temporal-address", client.DefaultHostPort, "Temporal frontend host:port")
	fs.StringVar(&o.Namespace, "namespace", client.DefaultNamespace, "Temporal namespace")
	fs.StringVar(&o.Identity, "identity", "", "this process's identity in Temporal's history (default pid@host)")
	fs.DurationVar(&o.DialTimeout, "dial-timeout", 10*time.Second, "how long to wait for the Temporal server")
	o.Log.AddFlags(fs)
}

// ClientOptions returns the client options for these settings, logging
// through logger. HostPort is left for the caller to set where the address
// is not known in advance (a dev server on a free port).
func (o Options) ClientOptions(logger tlog.Logger) client.Options {
	ns := o.Namespace
	if ns == "" {
		ns = client.DefaultNamespace
	}
	return client.Options{
		HostPort:  o.Address,
		Namespace: ns,
		Identity:  o.Identity,
		Logger:    logger,
	}
}

// ErrUnreachable is wrapped by Dial's error when the server did not answer.
var ErrUnreachable = errors.New("cannot reach the Temporal server")

// Dial connects to Temporal and checks the server answers, so an unreachable
// server is one clear error rather than a hang.
func (o Options) Dial(ctx context.Context, logger tlog.Logger) (client.Client, error) {
	timeout := o.DialTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := client.DialContext(ctx, o.ClientOptions(logger))
	if err != nil {
		return nil, fmt.Errorf("%w at %s (namespace %q): %w", ErrUnreachable, o.Address, o.Namespace, err)
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
