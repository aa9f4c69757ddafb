package connect

import (
	"net"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// StartWarnings are the settings of a process that expose what mailwave
// keeps private, each said once at start (LogStartWarnings): a plain-text
// connection to a Temporal server that is not on loopback (payloads are
// encrypted, but workflow IDs, search attributes, the API key or the
// identity are not), metrics served beyond loopback (metricsListen, the
// worker's --metrics-listen; "" for none), and debug logging, whose lines
// carry errors in full (a server's reply naming a folder) and operators'
// reasons.
func (o Options) StartWarnings(metricsListen string) []string {
	var out []string
	if host, ok := hostOf(o.Address); ok && !isLoopback(host) {
		if conf, err := o.tlsConfig(); conf == nil && err == nil { // nil, nil: no TLS asked for
			out = append(out, "INSECURE: the connection to the Temporal server at "+o.Address+
				" is plain text (no TLS) and not on loopback: workflow IDs, search attributes and this process's identity cross the network in clear; give --tls (and --tls-ca, or --tls-cert/--tls-key for mTLS)")
		}
	}
	if metricsListen != "" {
		if host, ok := hostOf(metricsListen); ok && !isLoopback(host) {
			out = append(out, "metrics are served beyond loopback at "+metricsListen+
				", without TLS or a login: anyone who can reach it reads the programme's figures and its organisations' names; listen on 127.0.0.1 and scrape through a proxy or a private network")
		}
	}
	if level, err := zapcore.ParseLevel(o.Log.Level); err == nil && level <= zapcore.DebugLevel {
		out = append(out, "debug logging is on: debug lines carry errors in full, which can name a mailbox's folders, and operators' reasons; use --log-level info outside a test")
	}
	return out
}

// LogStartWarnings logs each warning once, at warn level.
func LogStartWarnings(z *zap.Logger, warnings []string) {
	for _, w := range warnings {
		z.Warn(w)
	}
}

// hostOf is the host of a host:port ("" for ":port", every interface);
// false when addr is empty or has no port.
func hostOf(addr string) (string, bool) {
	if addr == "" {
		return "", false
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", false
	}
	return host, true
}

// isLoopback reports whether host is localhost or a loopback address. A
// name is not resolved: only "localhost" counts; "" and an unspecified
// address (every interface) are not loopback.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
