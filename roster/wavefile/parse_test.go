package wavefile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func parseString(t *testing.T, in string) ([]Row, *ParseError) {
	t.Helper()
	rows, err := Parse(strings.NewReader(in), "mailboxes.csv")
	if err == nil {
		return rows, nil
	}
	var pe *ParseError
	require.ErrorAs(t, err, &pe)
	assert.Nil(t, rows)
	return nil, pe
}

func problemLines(pe *ParseError) []int {
	var lines []int
	for _, p := range pe.Problems {
		lines = append(lines, p.Line)
	}
	return lines
}

func TestParseHeaderVariants(t *testing.T) {
	jo := Row{Line: 2, Address: "jo.bloggs@trust.nhs.example", Org: "Trust A", DisplayName: "Jo Bloggs"}
	for name, tc := range map[string]struct {
		in   string
		want []Row
	}{
		"usual order": {
			in:   "address,org,display_name\nJo.Bloggs@Trust.NHS.example,Trust A,Jo Bloggs\n",
			want: []Row{jo},
		},
		"other order, any case, padded": {
			in:   " Display_Name ,ADDRESS,Org\n Jo Bloggs , jo.bloggs@trust.nhs.example ,  Trust A\n",
			want: []Row{jo},
		},
		"byte order mark and CRLF": {
			in:   "\ufeffaddress,org,display_name\r\njo.bloggs@trust.nhs.example,Trust A,Jo Bloggs\r\n",
			want: []Row{jo},
		},
		"address only": {
			in:   "address\njo.bloggs@trust.nhs.example\n",
			want: []Row{{Line: 2, Address: "jo.bloggs@trust.nhs.example"}},
		},
		"quoted values, blank lines counted but skipped": {
			in: "address,display_name\n\n\"jo.bloggs@trust.nhs.example\",\"Bloggs, Jo \"\"JB\"\"\"\n\n" +
				"sam@trust.nhs.example,Sam\n",
			want: []Row{
				{Line: 3, Address: "jo.bloggs@trust.nhs.example", DisplayName: `Bloggs, Jo "JB"`},
				{Line: 5, Address: "sam@trust.nhs.example", DisplayName: "Sam"},
			},
		},
		"no final newline": {
			in:   "org,address\nTrust A,jo.bloggs@trust.nhs.example",
			want: []Row{{Line: 2, Address: "jo.bloggs@trust.nhs.example", Org: "Trust A"}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			rows, pe := parseString(t, tc.in)
			require.Nil(t, pe)
			assert.Equal(t, tc.want, rows)
		})
	}
}

func TestParseReportsEveryBadLineAtOnce(t *testing.T) {
	in := strings.Join([]string{
		"address,org",                     // 1
		"ann@trust.nhs.example,Trust A",   // 2
		"bob@trust.nhs.example",           // 3: one field
		",Trust A",                        // 4: empty address
		"",                                // 5: blank, skipped
		"not-an-address,Trust A",          // 6: invalid
		"cat@trust.nhs.example,Trust B,x", // 7: three fields
		"dan@trust.nhs.example,Trust B",   // 8
		"ANN@Trust.NHS.example,Trust C",   // 9: duplicate of 2
		"  ,Trust C",                      // 10: blank address
		"Eve <eve@trust.nhs.example>,X",   // 11: not bare
	}, "\n") + "\n"

	_, pe := parseString(t, in)
	require.NotNil(t, pe)
	assert.Equal(t, []int{3, 4, 6, 7, 9, 10, 11}, problemLines(pe))
	assert.Equal(t, "has 1 fields; the header has 2", pe.Problems[0].Msg)
	assert.Equal(t, "the address is empty", pe.Problems[1].Msg)
	assert.Contains(t, pe.Problems[2].Msg, `"not-an-address" is not an email address`)
	assert.Equal(t, "has 3 fields; the header has 2", pe.Problems[3].Msg)
	assert.Equal(t, "ann@trust.nhs.example is a duplicate of line 2", pe.Problems[4].Msg)
	assert.Contains(t, pe.Problems[6].Msg, "not a bare email address")

	msg := pe.Error()
	assert.True(t, strings.HasPrefix(msg, "mailboxes.csv has 7 problems:\n"), msg)
	assert.Contains(t, msg, "\nmailboxes.csv line 9: ann@trust.nhs.example is a duplicate of line 2\n")
}

func TestParseThreeBadLinesGiveThreeProblems(t *testing.T) {
	in := "address\nok1@trust.nhs.example\nbad1\nok2@trust.nhs.example\nbad2@\n@bad3.example\n"
	_, pe := parseString(t, in)
	require.NotNil(t, pe)
	assert.Equal(t, []int{3, 5, 6}, problemLines(pe))
}

func TestParseSingleProblemMessage(t *testing.T) {
	_, pe := parseString(t, "address\nok@trust.nhs.example\n\n\n\n\nnope\n")
	require.NotNil(t, pe)
	assert.Equal(t, `mailboxes.csv line 7: "nope" is not an email address: mail: missing '@' or angle-addr`, pe.Error())
}

func TestParseSyntaxErrorStopsThere(t *testing.T) {
	t.Run("bare quote", func(t *testing.T) {
		in := "address,display_name\nbad,A\nok@trust.nhs.example,Jo \"JB\" Bloggs\nworse,B\n"
		_, pe := parseString(t, in)
		require.NotNil(t, pe)
		assert.Equal(t, []int{2, 3}, problemLines(pe), "line 4 is not checked")
		assert.Contains(t, pe.Problems[1].Msg, "CSV syntax error at column")
		assert.Contains(t, pe.Problems[1].Msg, "bare \" in non-quoted-field")
		assert.Contains(t, pe.Problems[1].Msg, "nothing after this was checked")
	})
	t.Run("unterminated quote names the line it starts on", func(t *testing.T) {
		in := "address,display_name\nok@trust.nhs.example,\"Jo\nmore@trust.nhs.example,B\n"
		_, pe := parseString(t, in)
		require.NotNil(t, pe)
		assert.Equal(t, []int{2}, problemLines(pe))
		assert.Contains(t, pe.Problems[0].Msg, "extraneous or missing \" in quoted-field")
	})
	t.Run("in the header", func(t *testing.T) {
		_, pe := parseString(t, "addr\"ess\nok@trust.nhs.example\n")
		require.NotNil(t, pe)
		assert.Equal(t, []int{1}, problemLines(pe))
	})
}

func TestParseFileLevelProblems(t *testing.T) {
	for name, tc := range map[string]struct {
		in, want string
	}{
		"empty file":      {"", "mailboxes.csv is empty"},
		"only blank":      {"\n\r\n\n", "mailboxes.csv is empty"},
		"only a BOM":      {"\ufeff", "mailboxes.csv is empty"},
		"header only":     {"address,org\n", "mailboxes.csv has no mailboxes (only a header)"},
		"no header":       {"jo@trust.nhs.example,Trust A\nsam@trust.nhs.example,Trust B\n", "mailboxes.csv line 1: has no header: the first line must name the columns (address, and optionally org and display_name)"},
		"no address":      {"org,display_name\nTrust A,Jo\n", `mailboxes.csv line 1: the header has no "address" column`},
		"unknown columns": {"address,Phone,org,\njo@trust.nhs.example,1,A,\n", `mailboxes.csv line 1: the header has unknown column(s) "Phone", ""; the columns are address (required), org and display_name`},
		"repeated column": {"address,Address\njo@trust.nhs.example,x@trust.nhs.example\n", `mailboxes.csv line 1: the header names column "Address" twice`},
	} {
		t.Run(name, func(t *testing.T) {
			_, pe := parseString(t, tc.in)
			require.NotNil(t, pe)
			assert.Equal(t, tc.want, pe.Error())
		})
	}
}

func TestParseErrorListsTwentyProblems(t *testing.T) {
	var b strings.Builder
	b.WriteString("address\n")
	for i := range 25 {
		fmt.Fprintf(&b, "bad%d\n", i)
	}
	_, pe := parseString(t, b.String())
	require.NotNil(t, pe)
	require.Len(t, pe.Problems, 25)
	lines := strings.Split(pe.Error(), "\n")
	assert.Len(t, lines, 1+20+1)
	assert.Equal(t, "mailboxes.csv line 21: \"bad19\" is not an email address: mail: missing '@' or angle-addr", lines[20])
	assert.Equal(t, "and 5 more", lines[21])
}

// writeRoster writes an n-row input file to dir and returns its path; bad
// maps a line number to the address to put there instead.
func writeRoster(t testing.TB, n int, bad map[int]string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("address,org,display_name\n")
	for i := range n {
		line := i + 2
		addr := fmt.Sprintf("user%07d@trust%03d.nhs.example", i, i%500)
		if a, ok := bad[line]; ok {
			addr = a
		}
		fmt.Fprintf(&b, "%s,Trust %d,User %d\n", addr, i%500, i)
	}
	path := filepath.Join(t.TempDir(), "roster.csv")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
	return path
}

func parseFile(t *testing.T, path string) ([]Row, error) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	return Parse(f, filepath.Base(path))
}

func TestParseLargeFile(t *testing.T) {
	const n = 100_000
	// Speed is not asserted here (a timed test is flaky on a loaded
	// machine); the benchmark below measures it.
	t.Run("all good", func(t *testing.T) {
		path := writeRoster(t, n, nil)
		rows, err := parseFile(t, path)
		require.NoError(t, err)
		require.Len(t, rows, n)
		assert.Equal(t, Row{Line: n + 1, Address: "user0099999@trust499.nhs.example", Org: "Trust 499", DisplayName: "User 99999"}, rows[n-1])
	})
	t.Run("one bad row is found", func(t *testing.T) {
		path := writeRoster(t, n, map[int]string{73_412: "user@@trust.nhs.example"})
		_, err := parseFile(t, path)
		var pe *ParseError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, []int{73_412}, problemLines(pe))
		assert.True(t, strings.HasPrefix(err.Error(), "roster.csv line 73412: "), err.Error())
	})
}

func BenchmarkParse100k(b *testing.B) {
	path := writeRoster(b, 100_000, nil)
	data, err := os.ReadFile(path)
	require.NoError(b, err)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(bytes.NewReader(data), "roster.csv"); err != nil {
			b.Fatal(err)
		}
	}
}

// An operator's list is bounded: control characters (a line break in a
// quoted field among them), overlong org and display names, an org that
// holds an address (shown in plain text), and overlong lines are refused,
// naming the line, never quoting the value.
func TestParseRefusesWhatNoMailboxListHolds(t *testing.T) {
	long := strings.Repeat("n", MaxDisplayNameLen+1)
	in := "address,org,display_name\n" +
		"ok@trust.nhs.example,trust,Ok\n" +
		"nl@trust.nhs.example,trust,\"two\nlines\"\n" +
		"tab@trust.nhs.example,tr\tust,Tab\n" +
		"esc@trust.nhs.example,trust,\x1b[31mred\n" +
		"org@trust.nhs.example," + strings.Repeat("o", MaxOrgBytes+1) + ",Org\n" +
		"name@trust.nhs.example,trust," + long + "\n" +
		"swapped@trust.nhs.example,jo.bloggs@trust.nhs.example,Trust\n"
	_, err := Parse(strings.NewReader(in), "in.csv")
	var pe *ParseError
	require.ErrorAs(t, err, &pe)
	msg := err.Error()
	for _, want := range []string{
		"in.csv line 3: field 3 holds a control character",
		"in.csv line 5: field 2 holds a control character",
		"in.csv line 6: field 3 holds a control character",
		"in.csv line 7: the org is longer than 64 bytes",
		"in.csv line 8: the display name is longer than 256 bytes",
		"in.csv line 9: the org holds an @",
	} {
		assert.Contains(t, msg, want)
	}
	assert.NotContains(t, msg, "jo.bloggs")
	assert.NotContains(t, msg, long)
	assert.NotContains(t, msg, "red")

	_, err = Parse(strings.NewReader("address\n"+strings.Repeat("a", MaxLineBytes+1)+"@x.example\n"), "big.csv")
	assert.ErrorContains(t, err, "longer than 4096 bytes")
}
