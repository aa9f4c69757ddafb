package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseCases(t *testing.T) {
	cases, err := parseCases("20ms, multiappend")
	require.NoError(t, err)
	// Always in knownCases' order, whatever the flag's.
	assert.Equal(t, "multiappend,20ms", caseNames(cases))

	cases, err = parseCases(caseNames(knownCases()))
	require.NoError(t, err)
	assert.Equal(t, knownCases(), cases)

	for _, bad := range []string{"", ",", "multiappend,exchange"} {
		_, err := parseCases(bad)
		assert.Error(t, err, "%q", bad)
	}
}

func TestMedian(t *testing.T) {
	assert.Equal(t, 2*time.Second, median([]time.Duration{3 * time.Second, time.Second, 2 * time.Second}))
	// The lower middle of an even count.
	assert.Equal(t, time.Second, median([]time.Duration{4 * time.Second, time.Second}))
}

func TestWithout(t *testing.T) {
	caps := []string{"IMAP4rev1", "MULTIAPPEND", "LITERAL+"}
	assert.Equal(t, []string{"IMAP4rev1", "LITERAL+"}, without(caps, "multiappend"))
	assert.Equal(t, []string{"IMAP4rev1", "MULTIAPPEND", "LITERAL+"}, caps, "without changed its argument")
	assert.True(t, has(caps, "literal+"))
	assert.False(t, has(caps, "MOVE"))
}
