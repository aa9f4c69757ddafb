package connect_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"mailwave/internal/connect"
)

// warned logs the start warnings of o (with metrics at metricsListen)
// through a zap observer and returns the lines logged.
func warned(o connect.Options, metricsListen string) []observer.LoggedEntry {
	core, logs := observer.New(zapcore.DebugLevel)
	connect.LogStartWarnings(zap.New(core), o.StartWarnings(metricsListen))
	return logs.All()
}

func TestStartWarnings(t *testing.T) {
	info := connect.LogOptions{Level: "info"}
	plain := func(addr string) connect.Options { return connect.Options{Address: addr, Log: info} }
	for _, c := range []struct {
		name    string
		o       connect.Options
		metrics string
		want    []string // a distinctive part of each warning, in order
	}{
		{"plain text beyond loopback", plain("temporal.internal.example:7233"), "", []string{"plain text (no TLS) and not on loopback"}},
		{"plain text to an address", plain("10.0.0.7:7233"), "", []string{"Temporal server at 10.0.0.7:7233 is plain text"}},
		{"plain text on loopback", plain("127.0.0.1:7233"), "", nil},
		{"plain text to localhost", plain("localhost:7233"), "", nil},
		{"plain text to ::1", plain("[::1]:7233"), "", nil},
		{"TLS beyond loopback", connect.Options{Address: "temporal.internal.example:7233", TLS: true, Log: info}, "", nil},
		{"no address (a dev server of the tests)", plain(""), "", nil},
		{"metrics on every interface", plain("127.0.0.1:7233"), ":9464", []string{"metrics are served beyond loopback at :9464"}},
		{"metrics on a LAN address", plain("127.0.0.1:7233"), "10.0.0.7:9464", []string{"metrics are served beyond loopback at 10.0.0.7:9464"}},
		{"metrics on 0.0.0.0", plain("127.0.0.1:7233"), "0.0.0.0:9464", []string{"metrics are served beyond loopback"}},
		{"metrics on loopback", plain("127.0.0.1:7233"), "127.0.0.1:9464", nil},
		{"debug logging", connect.Options{Address: "127.0.0.1:7233", Log: connect.LogOptions{Level: "debug"}}, "", []string{"debug logging is on: debug lines carry errors in full, which can name a mailbox's folders"}},
		{"all three", connect.Options{Address: "temporal:7233", Log: connect.LogOptions{Level: "debug"}}, ":9464",
			[]string{"plain text (no TLS)", "metrics are served beyond loopback", "debug logging is on"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			logs := warned(c.o, c.metrics)
			if !assert.Len(t, logs, len(c.want)) {
				return
			}
			for i, w := range c.want {
				assert.Equal(t, zapcore.WarnLevel, logs[i].Level, "at warn level")
				assert.Contains(t, logs[i].Message, w)
			}
		})
	}
}
