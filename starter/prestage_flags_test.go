package main

import (
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
)

// TestPrestageFlagsRefuseWhatCannotWork: each bad pre-stage option is
// named; without --prestage there is no policy, and a pre-stage flag
// given without it is refused rather than ignored.
func TestPrestageFlagsRefuseWhatCannotWork(t *testing.T) {
	parse := func(args ...string) (*contract.Prestage, error) {
		var p prestageFlags
		f := pflag.NewFlagSet("t", pflag.ContinueOnError)
		p.add(f)
		require.NoError(t, f.Parse(args))
		return p.policy()
	}
	pol, err := parse()
	require.NoError(t, err)
	assert.Nil(t, pol, "no --prestage: copy at T")
	pol, err = parse("--prestage")
	require.NoError(t, err)
	d := contract.DefaultPrestage
	assert.Equal(t, &d, pol, "the defaults: Exchange Online's budget")
	pol, err = parse("--prestage", "--prestage-pool", "nhs-tenant")
	require.NoError(t, err)
	assert.Equal(t, "nhs-tenant", pol.Pool)

	for want, args := range map[string][]string{
		"--prestage-cap is for a pre-staged wave":                         {"--prestage-cap", "10"},
		"--prestage-incremental-every 10m0s: 0 (none) or at least 1h0m0s": {"--prestage", "--prestage-incremental-every", "10m"},
		"pool cap 0":                               {"--prestage", "--prestage-cap", "0"},
		"mailbox rate 0.5 bytes/s":                 {"--prestage", "--mailbox-rate", "0.0000005"},
		"mailbox rate +Inf":                        {"--prestage", "--mailbox-rate", "+Inf"},
		"efficiency 0":                             {"--prestage", "--prestage-efficiency", "0"},
		"--prestage-pool is for a pre-staged wave": {"--prestage-pool", "tenant-a"},
		`pool "../tenant": a wave ID is`:           {"--prestage", "--prestage-pool", "../tenant"},
	} {
		_, err := parse(args...)
		assert.ErrorContains(t, err, want, "%v", args)
	}
	assert.ErrorContains(t, checkPrestageLead(&contract.Prestage{StartDelay: time.Hour, Margin: 14 * 24 * time.Hour}, 14*24*time.Hour),
		"leave no time of the 336h0m0s notice lead")
	assert.NoError(t, checkPrestageLead(&d, 14*24*time.Hour))
	assert.NoError(t, checkPrestageLead(nil, time.Hour))
}
