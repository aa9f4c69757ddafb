// Package notices renders the three user notices (T-14, T-1, success), the
// correction of a rescheduled mailbox's date and the admin's notices from
// templates. The defaults are embedded; an operator can override any of them
// by putting files with the same names in a directory given to Load.
//
// Each kind has two template files:
//
//	<kind>.txt.tmpl   text/template: {{define "subject"}}...{{end}} plus the
//	                  plain-text body (everything outside the define)
//	<kind>.html.tmpl  html/template: the HTML body
//
// where <kind> is t14, t1, success, rescheduled, failure or org_held. Both see a Data value. The HTML body is
// optional for a sender to use, but it is always rendered.
package notices

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	texttemplate "text/template"
	"time"

	"mailwave/contract"
	"mailwave/mail/port"
)

//go:embed templates/*.tmpl
var embedded embed.FS

const (
	embeddedDir     = "templates"
	subjectTemplate = "subject"
	// fallbackName addresses a user whose display name is unknown.
	fallbackName = "colleague"
	// dateLayout and dateTimeLayout give e.g. "Saturday 5 December 2026" and
	// "Saturday 5 December 2026 at 20:00 UTC". Times are always shown in UTC
	// so that a notice renders the same wherever and whenever it is sent.
	dateLayout     = "Monday 2 January 2006"
	dateTimeLayout = dateLayout + " at 15:04 MST"
)

// Data is what the templates see.
type Data struct {
	// Key is the mailbox's opaque key. A failure notice quotes it so that the
	// admin and the support team can name the mailbox without the address.
	Key string
	// DisplayName is the user's display name. When unknown it is "colleague"
	// in a user notice, which greets the user with it, and "" in a failure
	// notice, which names the user to the admin.
	DisplayName string
	Address     string
	Org         string
	WaveID      string
	// MigrateAt is the migration time, e.g. "Saturday 5 December 2026 at
	// 20:00 UTC"; MigrateDate is its date alone. Both are "" when unknown.
	MigrateAt   string
	MigrateDate string
	Kind        contract.NoticeKind
	// Subject is the rendered subject line, for the bodies (e.g. an HTML
	// <title>). It is empty while the subject itself is rendered.
	Subject string
	// Step, ErrorType and Reason say why the mailbox needs support; they are
	// set in the admin's notices only. In a failure notice Reason is fixed
	// words for the error type (FailureWords), never the reason the mailbox
	// failed with: that quotes servers and can name a folder, and is kept
	// in the mailbox's result for the migration team instead.
	Step      string
	ErrorType string
	Reason    string
}

// Rendered is a notice ready to send.
type Rendered struct {
	Subject string
	Text    string
	HTML    string
}

// Templates holds the parsed templates of every notice kind. It is immutable
// after Load and safe for concurrent use.
type Templates struct {
	kinds map[contract.NoticeKind]kindTemplates
}

// kindTemplates is one kind's parsed templates and where each came from, so
// that errors can name the file.
type kindTemplates struct {
	text     *texttemplate.Template // root is the body; subjectTemplate is the subject
	html     *htmltemplate.Template
	textFile string
	htmlFile string
}

// Load parses the embedded templates, overridden by any file of the same name
// in dir. With dir "" only the embedded templates are used. Every template is
// parsed and test-rendered here, so a broken override fails at start-up, not
// at send time; the error names the file.
func Load(dir string) (*Templates, error) {
	if dir != "" {
		info, err := os.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("notices: template directory: %w", err)
		}
		if !info.IsDir() {
			return nil, fmt.Errorf("notices: template directory %s is not a directory", dir)
		}
	}
	t := &Templates{kinds: make(map[contract.NoticeKind]kindTemplates, len(contract.AllNoticeKinds))}
	for _, kind := range contract.AllNoticeKinds {
		kt, err := loadKind(dir, kind)
		if err != nil {
			return nil, err
		}
		// A trial render catches what parsing cannot, such as a misspelt field.
		if _, err := kt.render(newData(sampleNotice(kind))); err != nil {
			return nil, err
		}
		t.kinds[kind] = kt
	}
	return t, nil
}

// Render renders the notice for its kind. T-14, T-1 and rescheduled
// notices need MigrateAt (the rescheduled one's is the new T); a success or failure notice may leave it zero. A failure notice
// needs its Failure.
func (t *Templates) Render(n port.Notice) (Rendered, error) {
	kt, ok := t.kinds[n.Kind]
	if !ok {
		return Rendered{}, fmt.Errorf("notices: unknown notice kind %q", n.Kind)
	}
	switch n.Kind {
	case contract.NoticeT14, contract.NoticeT1, contract.NoticeRescheduled:
		// The advance notices exist to tell the user the date; without one
		// they would read "will move on ." so refuse rather than send that.
		if n.MigrateAt.IsZero() {
			return Rendered{}, fmt.Errorf("notices: %s notice for mailbox %s has no migration time", n.Kind, n.Mailbox.Key)
		}
	case contract.NoticeFailure, contract.NoticeOrgHeld:
		// An admin's notice that cannot say why is no use to the admin.
		if n.Failure == nil {
			return Rendered{}, fmt.Errorf("notices: %s notice for mailbox %s has no failure details", n.Kind, n.Mailbox.Key)
		}
	}
	return kt.render(newData(n))
}

func loadKind(dir string, kind contract.NoticeKind) (kindTemplates, error) {
	var kt kindTemplates

	src, file, err := readTemplate(dir, string(kind)+".txt.tmpl")
	if err != nil {
		return kt, err
	}
	kt.textFile = file
	// missingkey=error only matters for maps, but keeps typos loud if Data
	// ever becomes one.
	kt.text, err = texttemplate.New(filepath.Base(file)).Option("missingkey=error").Parse(src)
	if err != nil {
		return kt, fmt.Errorf("notices: parse %s: %w", file, err)
	}
	if kt.text.Lookup(subjectTemplate) == nil {
		return kt, fmt.Errorf("notices: %s: no {{define %q}} block", file, subjectTemplate)
	}

	src, file, err = readTemplate(dir, string(kind)+".html.tmpl")
	if err != nil {
		return kt, err
	}
	kt.htmlFile = file
	kt.html, err = htmltemplate.New(filepath.Base(file)).Option("missingkey=error").Parse(src)
	if err != nil {
		return kt, fmt.Errorf("notices: parse %s: %w", file, err)
	}
	return kt, nil
}

// readTemplate returns the named template's source from dir if it is there,
// otherwise the embedded default, and a description of where it came from.
func readTemplate(dir, name string) (src, origin string, err error) {
	if dir != "" {
		path := filepath.Join(dir, name)
		b, rerr := os.ReadFile(path)
		if rerr == nil {
			return string(b), path, nil
		}
		if !errors.Is(rerr, fs.ErrNotExist) {
			return "", "", fmt.Errorf("notices: read %s: %w", path, rerr)
		}
	}
	b, err := embedded.ReadFile(embeddedDir + "/" + name)
	if err != nil {
		// Only possible if the embedded set and contract.AllNoticeKinds disagree.
		return "", "", fmt.Errorf("notices: no embedded template %s: %w", name, err)
	}
	return string(b), "embedded " + name, nil
}

func (kt kindTemplates) render(d Data) (Rendered, error) {
	var buf bytes.Buffer
	if err := kt.text.ExecuteTemplate(&buf, subjectTemplate, d); err != nil {
		return Rendered{}, fmt.Errorf("notices: render subject from %s: %w", kt.textFile, err)
	}
	// A subject is one header line: fold any template whitespace (and any
	// line break smuggled in through the data) into single spaces.
	d.Subject = strings.Join(strings.Fields(buf.String()), " ")
	if d.Subject == "" {
		return Rendered{}, fmt.Errorf("notices: %s renders an empty subject", kt.textFile)
	}

	buf.Reset()
	if err := kt.text.Execute(&buf, d); err != nil {
		return Rendered{}, fmt.Errorf("notices: render text from %s: %w", kt.textFile, err)
	}
	text := buf.String()

	buf.Reset()
	if err := kt.html.Execute(&buf, d); err != nil {
		return Rendered{}, fmt.Errorf("notices: render HTML from %s: %w", kt.htmlFile, err)
	}
	return Rendered{Subject: d.Subject, Text: text, HTML: buf.String()}, nil
}

func newData(n port.Notice) Data {
	d := Data{
		Key:         n.Mailbox.Key,
		DisplayName: strings.TrimSpace(n.Mailbox.DisplayName),
		Address:     n.Mailbox.Address,
		Org:         n.Mailbox.Org,
		WaveID:      n.WaveID,
		Kind:        n.Kind,
	}
	if d.DisplayName == "" && !n.Kind.ToAdmin() {
		d.DisplayName = fallbackName
	}
	if n.Failure != nil && n.Kind.ToAdmin() {
		d.Step = n.Failure.Step
		d.ErrorType = n.Failure.ErrorType
		d.Reason = n.Failure.Reason // an organisation held: counts and a night, written by mailwave
		if n.Kind == contract.NoticeFailure {
			d.Reason = FailureWords(n.Failure.ErrorType)
		}
	}
	if !n.MigrateAt.IsZero() {
		at := n.MigrateAt.UTC()
		d.MigrateAt = at.Format(dateTimeLayout)
		d.MigrateDate = at.Format(dateLayout)
	}
	return d
}

// FailureWords says in fixed words what a mailbox's error type means to
// its organisation's admin ("" for none).
func FailureWords(errType string) string {
	if contract.IsDeferReason(errType) {
		return contract.DeferReason(errType)
	}
	switch errType {
	case "":
		return ""
	case contract.ErrTypeMailboxNotFound:
		return "the mailbox was not found"
	case contract.ErrTypeBadCredentials:
		return "a mail server refused the migration's login for this mailbox"
	case contract.ErrTypeOverQuota:
		return "the target mailbox is full"
	case contract.ErrTypeNoticeNotSent:
		return "a notice to the user could not be sent, so the migration did not go ahead"
	case contract.ErrTypeBadItems:
		return "more messages than allowed could not be copied (the migration team has the list)"
	case contract.ErrTypeInvalidMailbox:
		return "the mailbox's details in the migration's list are not valid"
	case contract.ErrTypeVerifyMismatch:
		return "after the copy, the target did not hold every message of the source"
	case contract.ErrTypeServerAnswerTooLarge:
		return "a mail server sent more data than the migration accepts (broken or misconfigured)"
	case contract.ErrTypeRescheduleNotKept:
		return "the mailbox was moved to another night, but that night could not keep it"
	case contract.ErrTypeThrottled:
		return "the target kept asking the migration to slow down"
	case contract.ErrTypeTransient, "Timeout", "Error":
		return "a step kept failing after every retry"
	}
	return "the migration team has the details"
}

// sampleNotice is the data Load test-renders every template with.
func sampleNotice(kind contract.NoticeKind) port.Notice {
	n := port.Notice{
		Mailbox: contract.MailboxRef{
			Key:         "0123456789abcdef",
			Address:     "sample.user@example.invalid",
			Org:         "Sample Trust",
			DisplayName: "Sample User",
		},
		Kind:      kind,
		MessageID: contract.NoticeMessageID("0123456789abcdef", kind),
		WaveID:    "sample-wave",
		MigrateAt: time.Date(2026, time.December, 5, 20, 0, 0, 0, time.UTC),
	}
	if kind == contract.NoticeFailure {
		n.Failure = &contract.Failure{Step: "copy", ErrorType: contract.ErrTypeOverQuota, Reason: "target mailbox is full"}
	}
	if kind == contract.NoticeOrgHeld {
		n.Mailbox = contract.MailboxRef{Key: "org-0123456789abcdef", Org: "Sample Trust"}
		n.Failure = &contract.Failure{Step: "programme", ErrorType: contract.ErrTypeOrgHeld, Reason: "3 of 40 mailboxes needed support on night sample-wave (7.5 %), over the budget of 1.2 %"}
	}
	return n
}
