package smtptest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"mailwave/contract"
)

// Race has every one of workers send each of keys' notice at the same
// moment, as a notifier's retries would: an attempt that finds another
// worker's claim (a *contract.NoticeClaimHeld) tries again shortly. It
// returns how many attempts sent a notice and how many found a claim held;
// any other error fails the test.
func Race(t testing.TB, workers int, keys []string, send func(worker int, key string) (alreadySent bool, err error)) (sent, held int) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	for w := range workers {
		for _, k := range keys {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					already, err := send(w, k)
					var h *contract.NoticeClaimHeld
					if errors.As(err, &h) {
						mu.Lock()
						held++
						mu.Unlock()
						time.Sleep(5 * time.Millisecond)
						continue
					}
					if !assert.NoError(t, err, "worker %d, mailbox %s", w, k) {
						return
					}
					if !already {
						mu.Lock()
						sent++
						mu.Unlock()
					}
					return
				}
			}()
		}
	}
	wg.Wait()
	return sent, held
}
