package wavefile

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckOrgsRefusesAnUnknownOrganisationNamingTheLine(t *testing.T) {
	rows, pe := parseString(t, "address,org\n"+
		"jo@trust-a.nhs.example,trust-a\n"+
		"al@trust-a.nhs.example,Jo Bloggs\n"+ // a person's name typed in the org column
		"mo@gp.nhs.example,\n"+
		"di@trust-b.nhs.example,TRUST-B\n"+
		"ed@trust-c.nhs.example,trust-c\n")
	require.Nil(t, pe)

	err := CheckOrgs(rows, "mailboxes.csv", []string{"trust-a", "Trust-B"})
	var got *ParseError
	require.True(t, errors.As(err, &got), "%v", err)
	assert.Equal(t, []int{3, 6}, problemLines(got))
	assert.Equal(t, "mailboxes.csv has 2 problems:\n"+
		`mailboxes.csv line 3: the org "Jo Bloggs" is not a configured organisation`+"\n"+
		`mailboxes.csv line 6: the org "trust-c" is not a configured organisation`, err.Error())
}

func TestCheckOrgsGivesTheConfiguredSpelling(t *testing.T) {
	rows, pe := parseString(t, "address,org\njo@trust-a.nhs.example,TRUST-A\nmo@gp.nhs.example,\n")
	require.Nil(t, pe)
	require.NoError(t, CheckOrgs(rows, "mailboxes.csv", []string{"Trust-A"}))
	assert.Equal(t, "Trust-A", rows[0].Org, "the search attribute carries the configured name")
	assert.Equal(t, "", rows[1].Org, "an empty org stays empty")
}

func TestCheckOrgsWithNoneConfigured(t *testing.T) {
	rows, pe := parseString(t, "address,org\njo@trust-a.nhs.example,\n")
	require.Nil(t, pe)
	assert.NoError(t, CheckOrgs(rows, "m.csv", nil), "a list naming no organisation needs none configured")

	rows, pe = parseString(t, "address,org\njo@trust-a.nhs.example,trust-a\n")
	require.Nil(t, pe)
	assert.EqualError(t, CheckOrgs(rows, "m.csv", nil), `m.csv line 2: the org "trust-a" is not a configured organisation`)
}
