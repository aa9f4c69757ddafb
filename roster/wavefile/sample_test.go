package wavefile

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// roster returns n rows in file order, every fifth one in org "done".
func roster(n int) []Row {
	rows := make([]Row, n)
	for i := range rows {
		org := "todo"
		if i%5 == 0 {
			org = "done"
		}
		rows[i] = Row{Line: i + 2, Address: fmt.Sprintf("user%d@trust.nhs.example", i), Org: org}
	}
	return rows
}

func isDone(r Row) bool { return r.Org == "done" }

func TestSampleSizeExclusionAndOrder(t *testing.T) {
	rows := roster(12_500) // 10,000 eligible
	got, err := Sample(rows, 2, 7, isDone)
	require.NoError(t, err)
	require.Len(t, got, 200)
	for i, r := range got {
		assert.False(t, isDone(r), "excluded row %d sampled", r.Line)
		if i > 0 {
			assert.Greater(t, r.Line, got[i-1].Line, "roster order kept")
		}
	}
	assert.Greater(t, got[len(got)-1].Line, rows[len(rows)/2].Line, "drawn from the whole roster, not its start")
}

func TestSampleIsReproducible(t *testing.T) {
	rows := roster(5_000)
	a, err := Sample(rows, 10, 42, nil)
	require.NoError(t, err)
	b, err := Sample(rows, 10, 42, nil)
	require.NoError(t, err)
	c, err := Sample(rows, 10, 43, nil)
	require.NoError(t, err)
	assert.Equal(t, a, b, "same seed, same sample")
	assert.NotEqual(t, a, c, "another seed, another sample")
	assert.Len(t, a, 500)
}

func TestSampleRounding(t *testing.T) {
	for _, tc := range []struct {
		n       int
		percent float64
		want    int
	}{
		{100, 100, 100},
		{100, 1.5, 2},  // 1.5 rounds up
		{100, 1.4, 1},  // 1.4 rounds down
		{100, 0.1, 1},  // at least one
		{1, 0.0001, 1}, // at least one
		{0, 50, 0},     // nothing eligible
		{3, 50, 2},     // 1.5 rounds up
		{210_000, 4, 8_400},
	} {
		got, err := Sample(roster(tc.n), tc.percent, 1, nil)
		require.NoError(t, err)
		assert.Len(t, got, tc.want, "%v%% of %d", tc.percent, tc.n)
	}

	got, err := Sample(roster(10), 50, 1, func(Row) bool { return true })
	require.NoError(t, err)
	assert.Empty(t, got, "everything excluded")
}

func TestSamplePercentBounds(t *testing.T) {
	for _, p := range []float64{0, -1, 100.01, math.NaN(), math.Inf(1)} {
		_, err := Sample(roster(10), p, 1, nil)
		assert.ErrorContains(t, err, "must be more than 0 and at most 100", "percent %v", p)
	}
}

// Each row should be as likely as any other to be picked.
func TestSampleIsUniform(t *testing.T) {
	const n, seeds = 100, 2_000
	rows := roster(n)
	counts := make([]int, n)
	for seed := range int64(seeds) {
		got, err := Sample(rows, 10, seed, nil)
		require.NoError(t, err)
		for _, r := range got {
			counts[r.Line-2]++
		}
	}
	// Expected 200 per row, standard deviation about 13.4.
	for i, c := range counts {
		assert.InDelta(t, 200, c, 70, "row %d picked %d times", i, c)
	}
}
