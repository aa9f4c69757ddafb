package route

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, time.December, 5, 20, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":        0,
		"7":       7 * time.Second,
		" 120 ":   2 * time.Minute,
		"-3":      0,
		"soon":    0,
		"1e9":     0,
		"9999999": 24 * time.Hour,
		now.Add(45 * time.Second).Format(http.TimeFormat): 45 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       0,
	} {
		assert.Equal(t, want, parseRetryAfter(v, now), "%q", v)
	}
}

func TestSnippetWithholdsAddresses(t *testing.T) {
	for in, want := range map[string]string{
		"postmap: fatal: jo@x.example: bad\nmore": "postmap: fatal: " + withheld + " bad",
		"user jo%40x.example unknown":             "user " + withheld + " unknown",
		`{"user":"jo\u0040x"}`:                    withheld,
		"tab\tand\x00control":                     "tab and control",
		"":                                        "",
	} {
		assert.Equal(t, want, snippet(in), "%q", in)
	}
	assert.Len(t, snippet(string(make([]rune, 300))), 0)
	long := ""
	for range 150 {
		long += "é"
	}
	s := snippet(long)
	assert.LessOrEqual(t, len(s), maxSnippet)
	assert.Equal(t, 100, len([]rune(s)))
}
