package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// latencyNet delays the traffic between the copiers and the servers:
// Toxiproxy as a library, one proxy per server, each with a latency toxic
// in both directions. The benchmark runs each proxy in a process of its
// own (startProxy).
type latencyNet struct {
	api *toxiproxy.ApiServer
}

func newLatencyNet() *latencyNet {
	return &latencyNet{api: toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())}
}

// proxy starts a proxy to upstream on a free loopback port that adds rtt
// to every round trip (half each way). stop ends it and its connections.
func (l *latencyNet) proxy(name, upstream string, rtt time.Duration) (port int, stop func(), err error) {
	p := toxiproxy.NewProxy(l.api, name, "127.0.0.1:0", upstream)
	for _, stream := range []string{"upstream", "downstream"} {
		toxic := fmt.Sprintf(`{"name": "latency_%s", "type": "latency", "stream": %q, "attributes": {"latency": %d}}`,
			stream, stream, (rtt / 2).Milliseconds())
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(toxic)); err != nil {
			return 0, nil, fmt.Errorf("latency proxy %s: the %s toxic: %w", name, stream, err)
		}
	}
	if err := p.Start(); err != nil {
		return 0, nil, fmt.Errorf("latency proxy %s: %w", name, err)
	}
	_, portText, err := net.SplitHostPort(p.Listen)
	if err == nil {
		port, err = strconv.Atoi(portText)
	}
	if err != nil {
		p.Stop()
		return 0, nil, fmt.Errorf("latency proxy %s listens on %q: %w", name, p.Listen, err)
	}
	return port, p.Stop, nil
}

// proxyChild is the -proxy-to process: a latency proxy to upstream that
// prints its port and serves until its standard input closes.
func proxyChild(upstream string) error {
	port, stop, err := newLatencyNet().proxy("to "+upstream, upstream, proxyRTT)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Println(port)
	_, err = io.Copy(io.Discard, os.Stdin)
	return err
}

// startProxy runs a latency proxy to upstream in a process of its own
// (-proxy-to) and returns its port. In this process its buffers would
// raise this process's peak RSS, which Linux counts in the ru_maxrss of
// every mailwave copy started after (see memory). stop ends it.
func startProxy(upstream string) (port int, stop func(), err error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, nil, err
	}
	cmd := exec.Command(exe, "-proxy-to", upstream)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 0, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, nil, err
	}
	if err := cmd.Start(); err != nil {
		return 0, nil, fmt.Errorf("latency proxy to %s: %w", upstream, err)
	}
	stop = sync.OnceFunc(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			logf("latency proxy to %s: %v", upstream, err)
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err == nil {
		port, err = strconv.Atoi(strings.TrimSpace(line))
	}
	if err != nil {
		stop()
		return 0, nil, fmt.Errorf("latency proxy to %s did not say its port (%q): %w", upstream, line, err)
	}
	return port, stop, nil
}

// loopback is the address of a port on 127.0.0.1.
func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// noopRTT logs in at addr and times NOOPs there.
func noopRTT(addr string, n int) ([]time.Duration, error) {
	p, err := dialProbe(addr)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	if err := p.login(user, password); err != nil {
		return nil, err
	}
	return p.noopTimes(n)
}
