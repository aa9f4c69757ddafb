package wavefile

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseEstateSizes(t *testing.T) {
	rows, err := ParseEstate(strings.NewReader("address,org,display_name,Size_MB\n"+
		"jo@trust.example,Trust A,Jo,12.5\nsam@trust.example,Trust A,Sam,\n"), "all.csv")
	require.NoError(t, err)
	assert.Equal(t, []Row{
		{Line: 2, Address: "jo@trust.example", Org: "Trust A", DisplayName: "Jo", SizeBytes: 12_500_000},
		{Line: 3, Address: "sam@trust.example", Org: "Trust A", DisplayName: "Sam"},
	}, rows)

	rows, err = ParseEstate(strings.NewReader("org,address,size_bytes\nTrust B,ann@trust.example,4096\n"), "all.csv")
	require.NoError(t, err)
	assert.Equal(t, []Row{{Line: 2, Address: "ann@trust.example", Org: "Trust B", SizeBytes: 4096}}, rows)

	// Parse's lists are read as before: a size column is not one of theirs.
	_, err = Parse(strings.NewReader("address,org,size_bytes\nann@trust.example,Trust B,4096\n"), "wave.csv")
	assert.ErrorContains(t, err, `unknown column(s) "size_bytes"`)
}

// Every problem is named by its line, and none names an address.
func TestParseEstateProblems(t *testing.T) {
	for name, tc := range map[string]struct {
		in   string
		want []string
	}{
		"no org column": {"address,display_name\njo@trust.example,Jo\n",
			[]string{`all.csv line 1: the header has no "org" column`}},
		"both sizes": {"address,org,size_bytes,size_mb\njo@trust.example,A,1,1\n",
			[]string{`all.csv line 1: the header names both "size_bytes" and "size_mb"`}},
		"unknown column": {"address,org,size\njo@trust.example,A,1\n",
			[]string{`unknown column(s) "size"; the columns are address and org (required), display_name, and size_bytes or size_mb`}},
		"rows": {"address,org,size_bytes\n" +
			"jo@trust.example,,1\n" + // line 2: no org
			"sam@trust.example,A,-4\n" + // 3: a negative size
			"ann@trust.example,A,1.5\n" + // 4: bytes are whole
			"Ann <ann2@trust.example>,A,\n" + // 5: not bare
			"ben@trust.example,A,\n" +
			"BEN@trust.example,A,\n", // 7: a duplicate of 6
			[]string{
				"all.csv has 5 problems:",
				"line 2: the org is empty",
				"line 3: the size is not a size: size_bytes is a whole number of bytes",
				"line 4: the size is not a size",
				"line 5: the address is not a bare email address",
				"line 7: the address is a duplicate of line 6",
			}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseEstate(strings.NewReader(tc.in), "all.csv")
			var pe *ParseError
			require.True(t, errors.As(err, &pe), "%v", err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), "trust.example", "no problem names an address")
		})
	}
}
