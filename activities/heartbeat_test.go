package activities

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// A copy heartbeats on a clock even while no batch finishes, and stops
// beating when told, before it reports its end.
func TestHeartbeatEvery(t *testing.T) {
	var beats atomic.Int32
	stop := heartbeatEvery(context.Background(), 10*time.Millisecond, func() { beats.Add(1) })
	time.Sleep(100 * time.Millisecond)
	stop()
	n := beats.Load()
	assert.GreaterOrEqual(t, n, int32(5))
	time.Sleep(50 * time.Millisecond)
	assert.Equal(t, n, beats.Load(), "no beat after stop")
}
