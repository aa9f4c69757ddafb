package wavefile

import "strings"

// CheckOrgs checks each row's org against the configured organisations,
// known (their names as configured): the org column reaches a plain-text
// search attribute (MailwaveOrg), so only a configured organisation's name
// may, never whatever was typed there (a person's name, say). An org that
// matches a configured name but for case is given the configured spelling;
// an empty org is left empty (the worker finds the organisation by the
// address's domain). Every row naming an organisation not configured is a
// problem on its line, all of them at once as a *ParseError named name.
func CheckOrgs(rows []Row, name string, known []string) error {
	byFold := make(map[string]string, len(known))
	for _, k := range known {
		byFold[strings.ToLower(k)] = k
	}
	p := &parser{name: name}
	for i := range rows {
		if rows[i].Org == "" {
			continue
		}
		configured, ok := byFold[strings.ToLower(rows[i].Org)]
		if !ok {
			p.add(rows[i].Line, "the org %q is not a configured organisation", rows[i].Org)
			continue
		}
		rows[i].Org = configured
	}
	return p.err()
}
