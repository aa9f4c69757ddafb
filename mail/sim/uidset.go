package sim

import "sort"

// uidRange is an inclusive range of UIDs, [lo, hi]. It encodes in JSON as a
// two-element array, which keeps state files small.
type uidRange [2]uint32

// uidSet is a set of UIDs kept as sorted, disjoint, non-adjacent ranges. A
// folder copied in order is a single range however many messages it holds.
type uidSet []uidRange

// find returns the position of the first range whose end is at or after uid.
func (s uidSet) find(uid uint32) int {
	return sort.Search(len(s), func(i int) bool { return s[i][1] >= uid })
}

// runEnd reports whether uid is in the set and, if so, the last UID of the
// run of present UIDs that holds it.
func (s uidSet) runEnd(uid uint32) (uint32, bool) {
	i := s.find(uid)
	if i < len(s) && s[i][0] <= uid {
		return s[i][1], true
	}
	return 0, false
}

// has reports whether uid is in the set.
func (s uidSet) has(uid uint32) bool {
	_, ok := s.runEnd(uid)
	return ok
}

// countUpTo returns how many UIDs of the set are at most limit.
func (s uidSet) countUpTo(limit uint32) int64 {
	var n int64
	for _, r := range s {
		if r[0] > limit {
			break
		}
		n += int64(min(r[1], limit)-r[0]) + 1
	}
	return n
}

// count returns the number of UIDs in the set.
func (s uidSet) count() int64 {
	var n int64
	for _, r := range s {
		n += int64(r[1]-r[0]) + 1
	}
	return n
}

// add inserts [lo, hi] and returns how many of those UIDs were already
// present: the target counts such overlapping writes as duplicates.
func (s *uidSet) add(lo, hi uint32) (overlap int64) {
	set := *s
	// Ranges from i to j-1 overlap or touch [lo, hi] and merge with it.
	i := sort.Search(len(set), func(k int) bool { return uint64(set[k][1])+1 >= uint64(lo) })
	j := i
	for j < len(set) && uint64(set[j][0]) <= uint64(hi)+1 {
		if set[j][0] <= hi && set[j][1] >= lo {
			overlap += int64(min(set[j][1], hi)-max(set[j][0], lo)) + 1
		}
		lo, hi = min(lo, set[j][0]), max(hi, set[j][1])
		j++
	}
	merged := uidRange{lo, hi}
	switch {
	case i == j: // nothing to merge: insert
		set = append(set, uidRange{})
		copy(set[i+1:], set[i:])
		set[i] = merged
	default: // replace ranges i..j-1 by the merged one
		set[i] = merged
		set = append(set[:i+1], set[j:]...)
	}
	*s = set
	return overlap
}
