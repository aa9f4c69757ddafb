package contract

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAPrestageShapeIsCheckedAndPlacesByShare(t *testing.T) {
	ok := Prestage{MailboxRate: 0.5e6, Efficiency: 0.9, Margin: 24 * time.Hour, Cap: 10, Spread: 48 * time.Hour,
		Shape: []float64{0, 0, 0.75, 1}}
	require.NoError(t, ok.Validate())
	for _, c := range []struct {
		share, want float64
	}{{0, 0}, {0.49, 0}, {0.5, 0.75}, {0.74, 0.75}, {0.75, 1}, {0.999, 1}, {1, 1}} {
		require.Equal(t, c.want, ok.ShapeAt(c.share), "share %g", c.share)
	}
	even := ok
	even.Shape = nil
	require.Equal(t, 0.3, even.ShapeAt(0.3), "no shape: evenly")

	cases := map[string]struct {
		shape  []float64
		spread time.Duration
		want   string
	}{
		"no spread":  {[]float64{0, 1}, 0, "a shape of 2 points without a spread"},
		"too long":   {make([]float64, MaxPrestageShape+1), time.Hour, "a shape of 65 points: at most 64"},
		"decreasing": {[]float64{0, 0.5, 0.4}, time.Hour, "shape point 3 is 0.4"},
		"above one":  {[]float64{0, 1.5}, time.Hour, "shape point 2 is 1.5"},
		"negative":   {[]float64{-0.1}, time.Hour, "shape point 1 is -0.1"},
		"NaN":        {[]float64{math.NaN()}, time.Hour, "shape point 1 is NaN"},
	}
	for name, c := range cases {
		p := ok
		p.Shape, p.Spread = c.shape, c.spread
		require.ErrorContains(t, p.Validate(), c.want, name)
	}
}

func TestANightsTIsReadFromItsWaveID(t *testing.T) {
	at := time.Date(2026, 12, 21, 20, 0, 0, 0, time.UTC)
	got, ok := NightMigrateAt("nights", NightWaveID("nights", at))
	require.True(t, ok)
	require.Equal(t, at, got)
	for _, c := range [][2]string{
		{"nights", "rehearsal-20261221T200000Z"},
		{"nights", "nights-weekend-20261221T200000Z"}, // another schedule whose name begins the same
		{"nights", "nights-2026-12-21"},
		{"", "-20261221T200000Z"},
	} {
		_, ok := NightMigrateAt(c[0], c[1])
		require.False(t, ok, "%q of %q", c[1], c[0])
	}
}
