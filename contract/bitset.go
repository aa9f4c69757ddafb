package contract

import "math/bits"

// Bitset is a fixed-size set of small integers (a wave's mailbox indexes),
// compact enough to carry over continue-as-new: 83,000 mailboxes take about
// 10 KB. It encodes to JSON as base64.
type Bitset []byte

// NewBitset returns a set able to hold 0..n-1.
func NewBitset(n int) Bitset { return make(Bitset, (n+7)/8) }

// Has reports whether i is in the set.
func (b Bitset) Has(i int) bool { return i >= 0 && i/8 < len(b) && b[i/8]&(1<<(i%8)) != 0 }

// Set adds i; an index out of range is ignored.
func (b Bitset) Set(i int) {
	if i >= 0 && i/8 < len(b) {
		b[i/8] |= 1 << (i % 8)
	}
}

// Clear removes i; an index out of range is ignored.
func (b Bitset) Clear(i int) {
	if i >= 0 && i/8 < len(b) {
		b[i/8] &^= 1 << (i % 8)
	}
}

// Count returns the number of members.
func (b Bitset) Count() int {
	n := 0
	for _, x := range b {
		n += bits.OnesCount8(x)
	}
	return n
}
