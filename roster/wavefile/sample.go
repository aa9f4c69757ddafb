package wavefile

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// sampleStream is the second PCG seed word: a fixed constant ("mailwave" in
// ASCII) so that the operator's seed alone decides the sample. Changing it
// changes every sample ever drawn.
const sampleStream = 0x6d61696c77617665

// Sample picks a reproducible random percent% (0 < percent <= 100) of the rows
// that exclude (which may be nil) does not exclude: "a random percentage of
// the remaining users". The size is rounded to the nearest whole row, but is
// at least 1 when any row is eligible; when none is, the sample is empty. The
// same seed and the same rows give the same sample, and the sample keeps the
// rows' order.
func Sample(rows []Row, percent float64, seed int64, exclude func(Row) bool) ([]Row, error) {
	if !(percent > 0 && percent <= 100) { // also refuses NaN
		return nil, fmt.Errorf("the sample percentage is %v; it must be more than 0 and at most 100", percent)
	}
	eligible := rows
	if exclude != nil {
		eligible = make([]Row, 0, len(rows))
		for _, r := range rows {
			if !exclude(r) {
				eligible = append(eligible, r)
			}
		}
	}
	want := int(math.Round(float64(len(eligible)) * percent / 100))
	if want == 0 && len(eligible) > 0 {
		want = 1
	}

	// Selection sampling (Knuth's Algorithm S): walk the rows in order and
	// take each with probability (still wanted)/(still left). Every subset of
	// the wanted size is equally likely, exactly want rows are taken, and
	// they come out in roster order.
	rng := rand.New(rand.NewPCG(uint64(seed), sampleStream))
	sample := make([]Row, 0, want)
	for i, r := range eligible {
		if len(sample) == want {
			break
		}
		if rng.IntN(len(eligible)-i) < want-len(sample) {
			sample = append(sample, r)
		}
	}
	return sample, nil
}
