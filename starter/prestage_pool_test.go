package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
)

// TestAPoolStatusShowsEveryWave: the pool's status lists its waves in
// order, with the T of the first waiting, in text as in JSON.
func TestAPoolStatusShowsEveryWave(t *testing.T) {
	due := time.Date(2026, 12, 21, 20, 0, 0, 0, time.UTC)
	st := poolStatusOf(contract.PrestagePoolStatus{Pool: "nhs-tenant", Cap: 2000, Active: 1500, Queued: 40, Granted: 90210,
		Expired: 2, Runs: 12, NextDue: due,
		Waves: map[string]contract.PoolWaveCount{"w-1221": {Active: 1000, Queued: 40}, "w-1214": {Active: 500}}})
	require.Len(t, st.Waves, 2)
	assert.Equal(t, "w-1214", st.Waves[0].Wave)
	var b bytes.Buffer
	require.NoError(t, st.WriteText(&b))
	assert.Equal(t, `pre-stage pool nhs-tenant
  running   1500 of 2000 at once
  waiting   40 (the first for T 2026-12-21T20:00:00Z)
  granted   90210 since it began (2 taken back, their release lost)
  runs      12
  wave w-1214               500 running, 0 waiting
  wave w-1221               1000 running, 40 waiting
`, b.String())
	assert.Nil(t, poolStatusOf(contract.PrestagePoolStatus{Pool: "idle", Cap: 1}).NextDue, "none waits")
}
