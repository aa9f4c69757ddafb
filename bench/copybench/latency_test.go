package main

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// echoServer answers every connection with what it sends.
func echoServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return l.Addr().String()
}

func TestLatencyProxyAddsRTT(t *testing.T) {
	port, stop, err := newLatencyNet().proxy("echo", echoServer(t), proxyRTT)
	require.NoError(t, err)
	defer stop()
	c, err := net.Dial("tcp", loopback(port))
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	br := bufio.NewReader(c)
	fastest := time.Duration(1<<63 - 1)
	for range 3 {
		t0 := time.Now()
		_, err := c.Write([]byte("ping\n"))
		require.NoError(t, err)
		line, err := br.ReadString('\n')
		require.NoError(t, err)
		rtt := time.Since(t0)
		assert.Equal(t, "ping\n", line)
		assert.GreaterOrEqual(t, rtt, proxyRTT*9/10)
		fastest = min(fastest, rtt)
	}
	// A loaded machine can stall any one round trip; not all three.
	assert.Less(t, fastest, 5*proxyRTT, "the proxy adds about its RTT, not more")
}
