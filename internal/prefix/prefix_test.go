package prefix

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestThePrefixMovesOnlyOverSettledItems(t *testing.T) {
	tr := New([]uint32{3, 5, 9, 12})
	_, grew := tr.Settle(9)
	assert.False(t, grew, "5 and 3 are not settled")
	_, grew = tr.Settle(77)
	assert.False(t, grew, "not planned")
	last, grew := tr.Settle(3)
	assert.True(t, grew)
	assert.Equal(t, uint32(3), last)
	last, grew = tr.Settle(5)
	assert.True(t, grew)
	assert.Equal(t, uint32(9), last, "over 5 and the 9 settled before it")
	last, _ = tr.Settle(12)
	assert.Equal(t, uint32(12), last)
}
