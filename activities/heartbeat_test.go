package activities

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A copy heartbeats on a clock even while no batch finishes, and stops
// beating when told, before it reports its end.
func TestHeartbeatEvery(t *testing.T) {
	var beats atomic.Int32
	stop := heartbeatEvery(context.Background(), 10*time.Millisecond, func() { beats.Add(1) })
	// Five beats take 50 ms; a loaded machine may take longer.
	require.Eventually(t, func() bool { return beats.Load() >= 5 }, 10*time.Second, 10*time.Millisecond, "the clock beats")
	stop()
	n := beats.Load()
	time.Sleep(50 * time.Millisecond)
	assert.Equal(t, n, beats.Load(), "no beat after stop")
}
