// Package route holds port.Router implementations used at cutover:
//
//   - TransportMap rewrites an MTA (Postfix style) transport map file and
//     runs a command such as postmap afterwards;
//   - Webhook asks a directory's HTTP API to move the mailbox.
//
// Both are safe for concurrent use, and both keep personal data out of
// their errors: an error names a mailbox only by its opaque key.
package route

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxSnippet is the most of a foreign message (a command's stderr, a
// response body) that an error quotes.
const maxSnippet = 200

// withheld stands in for foreign text that might hold an address.
const withheld = "[withheld]"

// mayHoldAddress reports whether s looks as if it could contain an email
// address, in plain, URL-encoded or JSON-escaped form. It errs on the side
// of caution: a false positive only costs a less helpful error message.
func mayHoldAddress(s string) bool {
	l := strings.ToLower(s)
	return strings.Contains(l, "@") || strings.Contains(l, "%40") || strings.Contains(l, `\u0040`)
}

// snippet makes foreign text fit for an error message: the first line only,
// control characters and invalid UTF-8 replaced, at most maxSnippet bytes,
// and every word that may hold an address withheld.
func snippet(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	words := strings.Fields(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "?")))
	for i, w := range words {
		if mayHoldAddress(w) {
			words[i] = withheld
		}
	}
	return truncate(strings.Join(words, " "), maxSnippet)
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
