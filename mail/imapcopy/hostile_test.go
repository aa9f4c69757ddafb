package imapcopy_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/mail/imapcopy"
	"mailwave/mail/port"
)

// hostileProxy stands in front of a real IMAP server and passes everything
// through until the client sends a command holding trigger: that command
// is not passed on, and the proxy answers it with announce (a literal's
// announcement) followed by an endless stream of bytes, up to max of them
// or until the client hangs up. streamed counts the bytes the proxy managed
// to write after the announcement.
type hostileProxy struct {
	addr     string
	streamed atomic.Int64
}

func startHostileProxy(t *testing.T, upstream, trigger, announce string, max int64) *hostileProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	h := &hostileProxy{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { h.serve(client, upstream, trigger, announce, max) })
		}
	})
	return h
}

func (h *hostileProxy) serve(client net.Conn, upstream, trigger, announce string, max int64) {
	defer client.Close()
	server, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	defer server.Close()
	var wmu sync.Mutex // the client's writes: the server's answers, or the proxy's
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := server.Read(buf)
			wmu.Lock()
			if n > 0 {
				_, _ = client.Write(buf[:n])
			}
			wmu.Unlock()
			if err != nil {
				client.Close()
				return
			}
		}
	}()
	br := bufio.NewReader(client)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		if !strings.Contains(line, trigger) {
			if _, err := io.WriteString(server, line); err != nil {
				return
			}
			continue
		}
		// Hold the server's answers from now on, and stream.
		wmu.Lock()
		defer wmu.Unlock()
		if _, err := io.WriteString(client, announce); err != nil {
			return
		}
		chunk := []byte(strings.Repeat("a", 64<<10))
		for h.streamed.Load() < max {
			n, err := client.Write(chunk)
			h.streamed.Add(int64(n))
			if err != nil {
				return
			}
		}
		return
	}
}

// TestHostileLiteral: a source that announces a
// 10 GB literal, as a message's body in a FETCH answer or as a folder's
// name in a LIST answer, and streams bytes after it, fails the mailbox's
// copy with ServerAnswerTooLarge (permanent: no retry gives it another
// worker), the copier having read a few kilobytes past the announcement
// and allocated a few megabytes in all.
func TestHostileLiteral(t *testing.T) {
	const (
		tenGB    = "10737418240"
		maxBody  = 1 << 20
		streamed = 512 << 20 // what the proxy would send, were it read
	)
	for _, c := range []struct {
		name, trigger, announce, what string
		limit                         int64
	}{
		{"fetch", "BODY.PEEK[]", "* 1 FETCH (UID 1 BODY[] {" + tenGB + "}\r\n", "a message body literal", maxBody},
		{"list", " LIST ", "* LIST () \"/\" {" + tenGB + "}\r\n", "a literal", 64 << 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := startPair(t)
			p.seed(t)
			proxy := startHostileProxy(t, p.src.Addr(), c.trigger, c.announce, streamed)
			host, portStr, err := net.SplitHostPort(proxy.addr)
			require.NoError(t, err)
			src := endpoint(p.src)
			src.Host = host
			src.Port, err = strconv.Atoi(portStr)
			require.NoError(t, err)
			copier := p.copier(t, func(o *imapcopy.Options) {
				o.Source, o.Lanes, o.MaxMessageBytes = src, 1, maxBody
			})
			var mu sync.Mutex
			var sourceRead []func() int64
			imapcopy.OnDial(copier, func(side imapcopy.Side, read func() int64) {
				if side == imapcopy.Source {
					mu.Lock()
					sourceRead = append(sourceRead, read)
					mu.Unlock()
				}
			})

			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			start := time.Now()
			_, err = copier.Copy(ctx, port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk})
			elapsed := time.Since(start)
			runtime.ReadMemStats(&after)

			require.Error(t, err)
			typ, permanent := port.IsPermanent(err)
			assert.True(t, permanent, "not retried: %v", err)
			assert.Equal(t, contract.ErrTypeServerAnswerTooLarge, typ, "%v", err)
			assert.Contains(t, err.Error(), "the source sent "+c.what+" of "+tenGB+" bytes, over the bound of")
			assert.NotContains(t, err.Error(), mailbox.Address, "the error names the mailbox by key")

			mu.Lock()
			var read int64
			for _, r := range sourceRead {
				read += r()
			}
			dialled := len(sourceRead)
			mu.Unlock()
			require.NotZero(t, dialled)
			allocated := after.TotalAlloc - before.TotalAlloc
			t.Logf("failed in %s; read %d bytes from the source; the proxy wrote %d bytes after the announcement; %d bytes allocated, heap in use %d -> %d",
				elapsed.Round(time.Millisecond), read, proxy.streamed.Load(), allocated, before.HeapInuse, after.HeapInuse)
			assert.Less(t, read, c.limit+(256<<10), "the client read the bound plus a little at most")
			assert.Less(t, allocated, uint64(64<<20), "memory stays bounded: a few megabytes for a 10 GB announcement")

			if c.name == "list" {
				// The preflight lists the folders too: it fails the same way,
				// not as a refusal of the mailbox (a deferral).
				_, err := copier.Preflight(ctx, mailbox)
				typ, _ := port.IsPermanent(err)
				assert.Equal(t, contract.ErrTypeServerAnswerTooLarge, typ, "%v", err)
			}
		})
	}
}
