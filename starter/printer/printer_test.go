package printer

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type base struct {
	Key string `json:"key"`
}

type row struct {
	base
	Stage   string     `json:"stage"`
	Since   time.Time  `json:"since"`
	Age     Seconds    `json:"age_seconds" text:"AGE"`
	Paused  bool       `json:"paused"`
	Attempt *int32     `json:"attempt"`
	Next    *time.Time `json:"next_retry"`
	Note    string     `json:"note"`
	hidden  string
}

type report struct {
	Scope  string  `json:"scope"`
	Budget Share   `json:"support_budget"`
	Moved  Bytes   `json:"bytes"`
	Rows   []row   `json:"rows"`
	Empty  []row   `json:"empty"`
	Total  subline `json:"total"`
}

type subline struct {
	Count int `json:"count"`
}

func sampleRows() []row {
	three := int32(3)
	next := time.Date(2026, 12, 5, 22, 0, 40, 0, time.UTC)
	return []row{
		{base: base{Key: "k1"}, Stage: "copying", Since: time.Date(2026, 12, 5, 20, 0, 0, 0, time.UTC),
			Age: 7805, Paused: false, Attempt: &three, Next: &next, Note: "throttled:\ttry again", hidden: "x"},
		{base: base{Key: "k2"}, Stage: "paused", Paused: true},
	}
}

func print(t *testing.T, f Format, fn func(Printer) error) string {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, fn(Printer{Out: &b, Format: f}))
	return b.String()
}

// Every format carries the same fields: the json names, and in text the
// headers made from them.
func TestEveryFormatCarriesTheSameFields(t *testing.T) {
	rows := sampleRows()
	want := []string{"key", "stage", "since", "age_seconds", "paused", "attempt", "next_retry", "note"}
	assert.Equal(t, want, Columns(rows))

	var doc []map[string]any
	require.NoError(t, json.Unmarshal([]byte(print(t, JSON, func(p Printer) error { return p.List(rows) })), &doc))
	require.Len(t, doc, 2)
	lines := strings.Split(strings.TrimSpace(print(t, JSONL, func(p Printer) error { return p.List(rows) })), "\n")
	require.Len(t, lines, 2)
	for i, line := range lines {
		var obj map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &obj))
		assert.Equal(t, doc[i], obj, "json and jsonl hold the same objects")
		assert.ElementsMatch(t, want, keys(obj))
	}
	assert.Equal(t, float64(7805), doc[0]["age_seconds"])
	assert.Nil(t, doc[1]["attempt"])

	text := print(t, Text, func(p Printer) error { return p.List(rows) })
	tl := strings.Split(strings.TrimRight(text, "\n"), "\n")
	require.Len(t, tl, 3)
	assert.Equal(t, []string{"KEY", "STAGE", "SINCE", "AGE", "PAUSED", "ATTEMPT", "NEXT", "RETRY", "NOTE"}, strings.Fields(tl[0]))
	assert.Equal(t, []string{"k1", "copying", "2026-12-05T20:00:00Z", "2h10m5s", "no", "3", "2026-12-05T22:00:40Z", "throttled:", "try", "again"},
		strings.Fields(tl[1]), "a tab in a value does not break the table")
	assert.Equal(t, []string{"k2", "paused", "-", "0s", "yes", "-", "-", "-"}, strings.Fields(tl[2]))
	assert.Equal(t, strings.Index(tl[0], "STAGE"), strings.Index(tl[1], "copying"), "columns are aligned")
}

func TestObjectsInEveryFormat(t *testing.T) {
	r := report{Scope: "wave w1", Budget: 0.02, Moved: 3_100_000_000, Rows: sampleRows(), Total: subline{Count: 2}}
	var doc map[string]any
	require.NoError(t, json.Unmarshal([]byte(print(t, JSON, func(p Printer) error { return p.Object(r) })), &doc))
	line := print(t, JSONL, func(p Printer) error { return p.Object(r) })
	assert.Equal(t, 1, strings.Count(line, "\n"), "jsonl is one line")
	var obj map[string]any
	require.NoError(t, json.Unmarshal([]byte(line), &obj))
	assert.Equal(t, doc, obj)
	assert.ElementsMatch(t, []string{"scope", "support_budget", "bytes", "rows", "empty", "total"}, keys(doc))

	text := print(t, Text, func(p Printer) error { return p.Object(r) })
	for _, want := range []string{"scope           wave w1", "support budget  2.00%", "bytes           3.1 GB",
		"rows\n  KEY  ", "empty  -", "total\n  count  2"} {
		assert.Contains(t, text, want)
	}
}

func TestAFormatIsOneOfThree(t *testing.T) {
	var f Format
	assert.Equal(t, "text", f.String())
	require.NoError(t, f.Set("jsonl"))
	assert.Equal(t, JSONL, f)
	assert.ErrorContains(t, f.Set("yaml"), `"yaml" is not an output format: use one of text|json|jsonl`)
}

func TestEmptyListIsAnEmptyArray(t *testing.T) {
	assert.Equal(t, "[]\n", print(t, JSON, func(p Printer) error { return p.List([]row{}) }))
	assert.Equal(t, "", print(t, JSONL, func(p Printer) error { return p.List([]row(nil)) }))
}

func TestValuesReadForPeople(t *testing.T) {
	assert.Equal(t, "40 s ago", Ago(40*time.Second))
	assert.Equal(t, "3 min 5 s ago", Ago(185*time.Second))
	assert.Equal(t, "2 h 5 min ago", Ago(125*time.Minute))
	assert.Equal(t, "999 B", Bytes(999).Text())
	assert.Equal(t, "1.5 kB", Bytes(1500).Text())
	assert.Equal(t, "1.23%", Share(0.0123).Text())
	assert.Equal(t, "1m30s", SecondsOf(90*time.Second+300*time.Millisecond).Text())
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
