package sim

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestUIDSet(t *testing.T) {
	var s uidSet
	assert.Zero(t, s.add(10, 20))
	assert.Zero(t, s.add(1, 3))
	assert.Zero(t, s.add(30, 30))
	assert.Equal(t, uidSet{{1, 3}, {10, 20}, {30, 30}}, s)

	assert.Zero(t, s.add(4, 9), "adjacent on both sides: merges")
	assert.Equal(t, uidSet{{1, 20}, {30, 30}}, s)

	assert.Equal(t, int64(7), s.add(15, 35), "15-20 and 30 were there")
	assert.Equal(t, uidSet{{1, 35}}, s)
	assert.Equal(t, int64(35), s.count())

	assert.Zero(t, s.add(40, 41))
	assert.Equal(t, int64(2), s.add(40, 41))
	assert.Equal(t, uidSet{{1, 35}, {40, 41}}, s)

	end, ok := s.runEnd(7)
	assert.True(t, ok)
	assert.Equal(t, uint32(35), end)
	assert.False(t, s.has(36))
	assert.True(t, s.has(41))
	assert.False(t, s.has(0))
	assert.Equal(t, int64(10), s.countUpTo(10))
	assert.Equal(t, int64(36), s.countUpTo(40))
	assert.Equal(t, int64(37), s.countUpTo(1000))

	data, err := json.Marshal(s)
	require.NoError(t, err)
	assert.JSONEq(t, `[[1,35],[40,41]]`, string(data))
	var back uidSet
	require.NoError(t, json.Unmarshal(data, &back))
	assert.Equal(t, s, back)
}
