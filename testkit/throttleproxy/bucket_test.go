package throttleproxy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func TestBucketStartsFullAndRefills(t *testing.T) {
	b := newBucket(1000, 0, t0) // burst: one second, 1000 bytes

	ok, _ := b.take(1000, t0)
	assert.True(t, ok, "a full bucket grants its burst")
	ok, wait := b.take(100, t0)
	assert.False(t, ok)
	assert.Equal(t, 100*time.Millisecond, wait)

	ok, _ = b.take(100, t0.Add(wait))
	assert.True(t, ok, "after the wait it was told, the bytes are there")

	ok, _ = b.take(1000, t0.Add(time.Hour))
	assert.True(t, ok, "an hour later the bucket holds no more than its burst")
	ok, _ = b.take(1, t0.Add(time.Hour))
	assert.False(t, ok)
}

func TestBucketCommandOverBurstTakesAFullBucket(t *testing.T) {
	b := newBucket(1000, 500, t0)

	ok, _ := b.take(2000, t0)
	assert.True(t, ok, "a command over the burst passes when the bucket is full")
	ok, wait := b.take(100, t0)
	assert.False(t, ok)
	assert.Equal(t, 1600*time.Millisecond, wait, "the debt of 1500 is repaid first")

	ok, wait = b.take(2000, t0.Add(1600*time.Millisecond))
	assert.False(t, ok, "a command over the burst waits for a full bucket")
	assert.Equal(t, 400*time.Millisecond, wait)
}

func TestBucketSetLimit(t *testing.T) {
	b := newBucket(0, 0, t0)
	ok, _ := b.take(1<<40, t0)
	assert.True(t, ok, "no limit grants anything")
	assert.Zero(t, b.limit())

	b.setLimit(100, t0)
	assert.Equal(t, 100.0, b.limit())
	ok, _ = b.take(100, t0)
	assert.True(t, ok, "a new limit starts with a full bucket")
	ok, wait := b.take(50, t0)
	assert.False(t, ok)
	assert.Equal(t, 500*time.Millisecond, wait)

	b.setLimit(1000, t0)
	ok, wait = b.take(50, t0)
	assert.False(t, ok, "raising the limit adds nothing at once")
	assert.Equal(t, 50*time.Millisecond, wait, "but refills at the new rate")

	b.setLimit(1e6, t0.Add(time.Second)) // a second at 1000/s: 1000 tokens
	b.setLimit(10, t0.Add(time.Second))
	ok, _ = b.take(10, t0.Add(time.Second))
	assert.True(t, ok)
	ok, _ = b.take(1, t0.Add(time.Second))
	assert.False(t, ok, "lowering the limit lowers what the bucket holds to the new burst")

	b.setLimit(-1, t0.Add(time.Second))
	ok, _ = b.take(1<<40, t0.Add(time.Second))
	assert.True(t, ok, "a limit of 0 or less lifts it")
}
