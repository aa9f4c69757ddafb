// Package registry is a worker's metrics registry: the handler the
// Temporal client and mailwave's code emit to (contract/metrics names
// mailwave's), a tally scope over tally's Prometheus reporter with the
// SDK's Prometheus naming, and the HTTP server Prometheus scrapes. Only the
// worker (and the tests) import it, so the starter links no Prometheus
// client.
package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/pflag"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
)

// Path is where the metrics are served.
const Path = "/metrics"

// ReportEvery is how often the counters and gauges reach the Prometheus
// registry: a scrape sees a change at most this late.
const ReportEvery = time.Second

// Buckets are the histograms' upper bounds, in seconds: from a millisecond
// (a task picked up at once by an idle worker) to ten minutes (Exchange's
// throttle replies ask for about five).
func Buckets() []float64 {
	return []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
}

// Registry is one process's metrics: the handler the Temporal client and
// mailwave's code emit to, and the Prometheus registry they end up in.
// A nil *Registry is metrics turned off: its handler is nil (the SDK's
// no-op) and Close does nothing.
type Registry struct {
	scope   io.Closer
	handler client.MetricsHandler
	http    http.Handler
	onError func(error)

	mu     sync.Mutex
	server *http.Server
}

// New makes a registry. onError hears of a metric that cannot be
// registered (one name used with two sets of labels) and of a metrics
// server that stops; nil writes them to standard error.
func New(onError func(error)) *Registry {
	if onError == nil {
		onError = func(err error) { fmt.Fprintln(os.Stderr, "metrics:", err) }
	}
	reg := prom.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reporter := tallyprom.NewReporter(tallyprom.Options{
		Registerer:              reg,
		DefaultTimerType:        tallyprom.HistogramTimerType,
		DefaultHistogramBuckets: Buckets(),
		OnRegisterError:         onError,
	})
	scope, closer := tally.NewRootScope(tally.ScopeOptions{
		CachedReporter:  reporter,
		Separator:       tallyprom.DefaultSeparator,
		SanitizeOptions: &sdktally.PrometheusSanitizeOptions,
		// tally's own figures carry an "instance" label of their own, which
		// would clash with the one Prometheus gives each target.
		OmitCardinalityMetrics: true,
	}, ReportEvery)
	return &Registry{
		scope:   closer,
		handler: sdktally.NewMetricsHandler(sdktally.NewPrometheusNamingScope(scope)),
		http:    reporter.HTTPHandler(),
		onError: onError,
	}
}

// Handler is what the Temporal client (connect.Options.Metrics) and
// mailwave's own code emit to; nil for a nil registry.
func (r *Registry) Handler() client.MetricsHandler {
	if r == nil {
		return nil
	}
	return r.handler
}

// HTTPHandler answers a Prometheus scrape.
func (r *Registry) HTTPHandler() http.Handler { return r.http }

// Serve listens on addr (host:port; port 0 picks a free one) and serves
// the metrics at Path until Close. It returns the address it listens on.
// A port already taken is an error here, at start-up.
func (r *Registry) Serve(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("--metrics-listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle(Path, r.http)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	r.mu.Lock()
	r.server = srv
	r.mu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.onError(fmt.Errorf("metrics server on %s stopped: %w", ln.Addr(), err))
		}
	}()
	return ln.Addr().String(), nil
}

// Close stops serving and reports the last figures to the registry.
func (r *Registry) Close() error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	srv := r.server
	r.server = nil
	r.mu.Unlock()
	var err error
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = srv.Shutdown(ctx)
	}
	return errors.Join(err, r.scope.Close())
}

// Options say where a worker serves its metrics.
type Options struct {
	// Listen is host:port; empty turns metrics off.
	Listen string
}

// AddFlags adds --metrics-listen.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Listen, "metrics-listen", "",
		"serve Prometheus metrics (the SDK's and mailwave's) at http://ADDRESS"+Path+", e.g. 127.0.0.1:9464 (empty: off)")
}

// Start makes a registry and serves it on Listen; with no Listen it
// returns nil (metrics off), which callers may use as they would a
// registry.
func (o Options) Start(onError func(error)) (*Registry, error) {
	if o.Listen == "" {
		return nil, nil
	}
	r := New(onError)
	if _, err := r.Serve(o.Listen); err != nil {
		_ = r.Close()
		return nil, err
	}
	return r, nil
}
