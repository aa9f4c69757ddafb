package workerapp

import (
	"context"
	"sync"
	"time"

	"go.temporal.io/sdk/client"

	"mailwave/contract/metrics"
	"mailwave/mail/adapt"
)

// RateSampleEvery is how often each organisation's adaptive copy rate is
// set on its gauge.
const RateSampleEvery = 5 * time.Second

// orgRate is one organisation's adaptive copy rate.
type orgRate struct {
	org  string
	rate *adapt.Rate
}

// rates lists the organisations' adaptive copy rates, in configuration
// order: a bounded set, the organisations this worker was configured with.
func (o *orgs) rates() []orgRate {
	var out []orgRate
	for _, name := range o.order {
		if r := o.ports[name].rate; r != nil {
			out = append(out, orgRate{org: name, rate: r})
		}
	}
	return out
}

// sampleRates sets each organisation's copy rate gauge, and counts the
// refusals its rate took in, now and every interval until ctx ends or stop is called; stop returns once no sample
// is being taken. With no handler or no rates it does nothing.
func sampleRates(ctx context.Context, h client.MetricsHandler, rates []orgRate, every time.Duration) (stop func()) {
	if h == nil || len(rates) == 0 {
		return func() {}
	}
	gauges := make([]client.MetricsGauge, len(rates))
	refusals := make([]client.MetricsCounter, len(rates))
	counted := make([]int64, len(rates)) // refusals already counted
	for i, r := range rates {
		tagged := h.WithTags(map[string]string{metrics.TagOrganisation: r.org})
		gauges[i], refusals[i] = tagged.Gauge(metrics.CopyRate), tagged.Counter(metrics.CopyRefusals)
	}
	sample := func() {
		for i, r := range rates {
			snap := r.rate.Snapshot()
			gauges[i].Update(snap.BytesPerSecond)
			if d := snap.Throttled - counted[i]; d > 0 {
				refusals[i].Inc(d)
				counted[i] = snap.Throttled
			}
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			sample()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}
