package notices_test

import (
	"bytes"
	"html"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/mail/notices"
	"mailwave/mail/port"
)

func notice(kind contract.NoticeKind) port.Notice {
	return port.Notice{
		Mailbox: contract.MailboxRef{
			Key:         "a1b2c3",
			Address:     "jo.bloggs@example.nhs.invalid",
			Org:         "Example NHS Trust",
			DisplayName: "Jo Bloggs",
		},
		Kind:      kind,
		MessageID: contract.NoticeMessageID("a1b2c3", kind),
		WaveID:    "wave-07",
		// 20:00 in London (GMT) is 20:00 UTC; a non-UTC zone checks the conversion.
		MigrateAt: time.Date(2026, time.December, 5, 21, 0, 0, 0, time.FixedZone("CET", 3600)),
	}
}

func TestRenderEmbedded(t *testing.T) {
	tpl, err := notices.Load("")
	require.NoError(t, err)

	subjects := map[contract.NoticeKind]string{
		contract.NoticeT14:     "Your mailbox will move on Saturday 5 December 2026",
		contract.NoticeT1:      "Reminder: your mailbox moves tomorrow, Saturday 5 December 2026",
		contract.NoticeSuccess: "Your mailbox has moved",
	}
	for _, kind := range contract.NoticeKinds {
		t.Run(string(kind), func(t *testing.T) {
			r, err := tpl.Render(notice(kind))
			require.NoError(t, err)
			assert.Equal(t, subjects[kind], r.Subject)
			for _, body := range []string{r.Text, r.HTML} {
				assert.Contains(t, body, "Dear Jo Bloggs,")
				assert.Contains(t, body, "Saturday 5 December 2026 at 20:00 UTC")
				assert.Contains(t, body, "Example NHS Trust")
				assert.Contains(t, body, "wave-07")
			}
			assert.Contains(t, r.HTML, "<title>"+subjects[kind]+"</title>")
			assert.NotContains(t, r.Text, "<p>")
		})
	}
}

func TestRenderFallbacksAndEscaping(t *testing.T) {
	tpl, err := notices.Load("")
	require.NoError(t, err)

	n := notice(contract.NoticeSuccess)
	n.Mailbox.DisplayName = "  "
	n.MigrateAt = time.Time{}
	r, err := tpl.Render(n)
	require.NoError(t, err)
	assert.Contains(t, r.Text, "Dear colleague,")
	assert.NotContains(t, r.Text, "0001")

	n = notice(contract.NoticeT14)
	n.Mailbox.DisplayName = "<b>O'Brien & Co</b>"
	r, err = tpl.Render(n)
	require.NoError(t, err)
	assert.Contains(t, r.Text, "Dear <b>O'Brien & Co</b>,")
	assert.Contains(t, r.HTML, "Dear &lt;b&gt;O&#39;Brien &amp; Co&lt;/b&gt;,")
}

func TestRenderRescheduled(t *testing.T) {
	tpl, err := notices.Load("")
	require.NoError(t, err)
	r, err := tpl.Render(notice(contract.NoticeRescheduled))
	require.NoError(t, err)
	assert.Equal(t, "Change of date: your mailbox will now move on Saturday 5 December 2026", r.Subject)
	for _, body := range []string{r.Text, r.HTML} {
		assert.Contains(t, body, "Dear Jo Bloggs,")
		assert.Contains(t, body, "has moved to")
		assert.Contains(t, body, "Saturday 5 December 2026 at 20:00 UTC")
		assert.Contains(t, body, "Please ignore the date in our earlier email")
	}
	n := notice(contract.NoticeRescheduled)
	n.MigrateAt = time.Time{}
	_, err = tpl.Render(n)
	assert.ErrorContains(t, err, "rescheduled notice for mailbox a1b2c3 has no migration time")
}

func TestRenderRejects(t *testing.T) {
	tpl, err := notices.Load("")
	require.NoError(t, err)

	n := notice(contract.NoticeT1)
	n.MigrateAt = time.Time{}
	_, err = tpl.Render(n)
	assert.ErrorContains(t, err, "no migration time")

	n.Kind = "t7"
	_, err = tpl.Render(n)
	assert.ErrorContains(t, err, `unknown notice kind "t7"`)
}

func TestOverride(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "t1.txt.tmpl"),
		[]byte("{{define \"subject\"}}\n  Tomorrow:\n {{.MigrateDate}}\n{{end}}Hi {{.DisplayName}}\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "README"), []byte("ignored"), 0o600))

	tpl, err := notices.Load(dir)
	require.NoError(t, err)

	r, err := tpl.Render(notice(contract.NoticeT1))
	require.NoError(t, err)
	assert.Equal(t, "Tomorrow: Saturday 5 December 2026", r.Subject, "subject folded onto one line")
	assert.Equal(t, "Hi Jo Bloggs\n", r.Text)
	assert.Contains(t, r.HTML, "moves to a new service tomorrow", "HTML not overridden stays embedded")

	r, err = tpl.Render(notice(contract.NoticeT14))
	require.NoError(t, err)
	assert.Equal(t, "Your mailbox will move on Saturday 5 December 2026", r.Subject)
}

func TestOverrideErrorsNameTheFile(t *testing.T) {
	cases := map[string]string{
		"t14.txt.tmpl":      "{{define \"subject\"}}x{{end}}{{.DisplayName",   // parse error
		"success.html.tmpl": "<p>{{if .Org}}</p>",                             // parse error
		"t1.txt.tmpl":       "no subject block {{.DisplayName}}",              // missing subject
		"success.txt.tmpl":  "{{define \"subject\"}}{{.NoSuchField}}{{end}}x", // exec error
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, name)
			require.NoError(t, os.WriteFile(path, []byte(src), 0o600))
			_, err := notices.Load(dir)
			require.Error(t, err)
			assert.Contains(t, err.Error(), path)
		})
	}
}

func TestLoadMissingDir(t *testing.T) {
	_, err := notices.Load(filepath.Join(t.TempDir(), "nope"))
	assert.Error(t, err)
}

func failureNotice() port.Notice {
	n := notice(contract.NoticeFailure)
	n.Failure = &contract.Failure{
		Step:      "copy",
		ErrorType: contract.ErrTypeOverQuota,
		Reason:    "target mailbox over quota: <4.2 GB> & rising",
	}
	return n
}

func TestRenderFailure(t *testing.T) {
	tpl, err := notices.Load("")
	require.NoError(t, err)

	r, err := tpl.Render(failureNotice())
	require.NoError(t, err)
	assert.Equal(t, "Mailbox migration needs support: mailbox a1b2c3", r.Subject, "the subject names the key, not the user")
	assert.Contains(t, r.HTML, "<title>"+r.Subject+"</title>")
	for _, body := range []string{r.Text, r.HTML} {
		assert.Contains(t, body, "a1b2c3")
		assert.Contains(t, body, "Jo Bloggs", "the admin is told which user")
		assert.Contains(t, body, "jo.bloggs@example.nhs.invalid")
		assert.Contains(t, body, "Example NHS Trust")
		assert.Contains(t, body, "wave-07")
		assert.Contains(t, body, "Saturday 5 December 2026 at 20:00 UTC")
		assert.Contains(t, body, "copy")
		assert.Contains(t, body, "OverQuota")
		assert.NotContains(t, body, "Dear ", "the admin is not greeted as the user")
	}
	assert.Contains(t, r.Text, "Reason:        the target mailbox is full\n", "fixed words for the error type")
	assert.NotContains(t, r.Text, "4.2 GB", "never the raw reason")
	assert.NotContains(t, r.Text, "<p>")
}

// TestFailureNoticeNeverQuotesTheRawReason: the reason a mailbox failed
// with quotes servers and can name a folder; the admin's notice names the
// key, the step and the error type, and says what the type means in fixed
// words.
func TestFailureNoticeNeverQuotesTheRawReason(t *testing.T) {
	tpl, err := notices.Load("")
	require.NoError(t, err)
	const folder = "Patients/Jane Doe referral"
	for _, typ := range []string{contract.ErrTypeVerifyMismatch, contract.ErrTypeBadItems, contract.ErrTypeServerAnswerTooLarge,
		contract.ErrTypeTransient, "SomethingNew", contract.ErrTypeTargetNoRoom} {
		n := failureNotice()
		n.Failure = &contract.Failure{Step: "copy_bulk", ErrorType: typ,
			Reason: `mailbox a1b2c3 folder "` + folder + `": 3 of 40 source messages are not on the target`}
		r, err := tpl.Render(n)
		require.NoError(t, err)
		for _, part := range []string{r.Subject, r.Text, r.HTML} {
			assert.NotContains(t, part, "Jane Doe", typ)
			assert.NotContains(t, part, "source messages are not on the target", typ)
		}
		for _, body := range []string{r.Text, r.HTML} {
			assert.Contains(t, body, "a1b2c3", typ)
			assert.Contains(t, body, "copy_bulk", typ)
			assert.Contains(t, body, typ)
		}
		assert.Contains(t, r.Text, "Reason:        "+notices.FailureWords(typ)+"\n", typ)
		assert.Contains(t, r.HTML, html.EscapeString(notices.FailureWords(typ)), typ)
	}
	// A template of the operator's own sees the fixed words too.
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "failure.txt.tmpl"), []byte(`{{define "subject"}}x{{end}}{{.Reason}}`), 0o600))
	own, err := notices.Load(dir)
	require.NoError(t, err)
	n := failureNotice()
	n.Failure.Reason = folder
	r, err := own.Render(n)
	require.NoError(t, err)
	assert.Equal(t, "the target mailbox is full", r.Text)
}

func TestRenderFailureFallbacks(t *testing.T) {
	tpl, err := notices.Load("")
	require.NoError(t, err)

	n := failureNotice()
	n.MigrateAt = time.Time{}
	n.WaveID = ""
	n.Mailbox.DisplayName = ""
	n.Mailbox.Address = ""
	n.Failure = &contract.Failure{}
	r, err := tpl.Render(n)
	require.NoError(t, err, "a failure notice needs no migration time")
	for _, body := range []string{r.Text, r.HTML} {
		assert.Contains(t, body, "(no display name)")
		assert.NotContains(t, body, "colleague")
		assert.Contains(t, body, "(no address)")
		assert.Contains(t, body, "(none given)")
		assert.NotContains(t, body, "Wave")
		assert.NotContains(t, body, "Migration at")
	}
	assert.NotContains(t, r.Text, "\n\n\n", "optional lines leave no gaps")
}

func TestRenderFailureNeedsDetails(t *testing.T) {
	tpl, err := notices.Load("")
	require.NoError(t, err)

	n := failureNotice()
	n.Failure = nil
	_, err = tpl.Render(n)
	assert.ErrorContains(t, err, "failure notice for mailbox a1b2c3 has no failure details")

	// Failure details on a user notice are ignored, not shown to the user.
	n = notice(contract.NoticeSuccess)
	n.Failure = &contract.Failure{Reason: "internal detail"}
	r, err := tpl.Render(n)
	require.NoError(t, err)
	assert.NotContains(t, r.Text, "internal detail")
}

func TestOverrideFailure(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "failure.txt.tmpl"),
		[]byte(`{{define "subject"}}Support needed for {{.Key}}{{end}}{{.Step}}/{{.ErrorType}}: {{.Reason}}`), 0o600))
	tpl, err := notices.Load(dir)
	require.NoError(t, err)

	r, err := tpl.Render(failureNotice())
	require.NoError(t, err)
	assert.Equal(t, "Support needed for a1b2c3", r.Subject)
	assert.Equal(t, "copy/OverQuota: the target mailbox is full", r.Text)

	require.NoError(t, os.WriteFile(filepath.Join(dir, "failure.html.tmpl"), []byte(`<p>{{.NoSuchField}}</p>`), 0o600))
	_, err = notices.Load(dir)
	assert.ErrorContains(t, err, filepath.Join(dir, "failure.html.tmpl"))
}

// --- Compose, ValidKey, BareMessageID ---

var (
	fromAddr  = &mail.Address{Name: "Trust Migration", Address: "migration@trust.example.invalid"}
	adminAddr = &mail.Address{Name: "Trust IT", Address: "it-admin@trust.example.invalid"}
)

// composed builds a notice and reads its header back with net/mail.
func composed(t *testing.T, n port.Notice) mail.Header {
	t.Helper()
	tpl, err := notices.Load("")
	require.NoError(t, err)
	msg, err := tpl.Compose(n, fromAddr, adminAddr)
	require.NoError(t, err)
	var buf bytes.Buffer
	_, err = msg.WriteTo(&buf)
	require.NoError(t, err)
	m, err := mail.ReadMessage(&buf)
	require.NoError(t, err)
	return m.Header
}

func TestComposeUserNotice(t *testing.T) {
	n := notice(contract.NoticeT14)
	h := composed(t, n)

	assert.Equal(t, n.MessageID, h.Get("Message-ID"))
	assert.Equal(t, "t14", h.Get("X-Mailwave-Kind"))
	assert.Equal(t, "wave-07", h.Get("X-Mailwave-Wave"))
	assert.Equal(t, "Your mailbox will move on Saturday 5 December 2026", h.Get("Subject"))
	assert.Empty(t, h.Get("User-Agent"))
	assert.NotEmpty(t, h.Get("Date"))
	from, err := h.AddressList("From")
	require.NoError(t, err)
	assert.Equal(t, []*mail.Address{fromAddr}, from)
	to, err := h.AddressList("To")
	require.NoError(t, err)
	assert.Equal(t, []*mail.Address{{Name: "Jo Bloggs", Address: "jo.bloggs@example.nhs.invalid"}}, to)
	assert.Equal(t, "Trust Migration", fromAddr.Name, "from is not changed")
}

func TestComposeWithoutWave(t *testing.T) {
	n := notice(contract.NoticeSuccess)
	n.WaveID = ""
	h := composed(t, n)
	assert.Equal(t, "success", h.Get("X-Mailwave-Kind"))
	_, present := h["X-Mailwave-Wave"]
	assert.False(t, present)
}

func TestComposeFailureNoticeGoesToAdmin(t *testing.T) {
	n := notice(contract.NoticeFailure)
	n.Failure = &contract.Failure{Step: "copy", ErrorType: contract.ErrTypeOverQuota, Reason: "over quota"}
	h := composed(t, n)
	to, err := h.AddressList("To")
	require.NoError(t, err)
	assert.Equal(t, []*mail.Address{adminAddr}, to)
	assert.Equal(t, "failure", h.Get("X-Mailwave-Kind"))
}

func TestComposeRejects(t *testing.T) {
	tpl, err := notices.Load("")
	require.NoError(t, err)
	const addr = "jo.bloggs@example.nhs.invalid"

	cases := map[string]struct {
		edit    func(*port.Notice)
		noAdmin bool
		want    string
	}{
		"empty key":          {edit: func(n *port.Notice) { n.Mailbox.Key = "" }, want: "empty mailbox key"},
		"path key":           {edit: func(n *port.Notice) { n.Mailbox.Key = "../x" }, want: "mailbox key"},
		"empty address":      {edit: func(n *port.Notice) { n.Mailbox.Address = "" }, want: "no recipient address"},
		"bad address":        {edit: func(n *port.Notice) { n.Mailbox.Address = "jo.bloggs@" }, want: "not a valid address"},
		"named address":      {edit: func(n *port.Notice) { n.Mailbox.Address = "Jo <" + addr + ">" }, want: "not a valid address"},
		"no message id":      {edit: func(n *port.Notice) { n.MessageID = "" }, want: "no Message-ID"},
		"bad message id":     {edit: func(n *port.Notice) { n.MessageID = "<a b@c>" }, want: "malformed Message-ID"},
		"unknown kind":       {edit: func(n *port.Notice) { n.Kind = "t7" }, want: "unknown notice kind"},
		"header in wave":     {edit: func(n *port.Notice) { n.WaveID = "w\r\nBcc: x@y" }, want: "wave ID"},
		"no migrate time":    {edit: func(n *port.Notice) { n.MigrateAt = time.Time{} }, want: "no migration time"},
		"failure no details": {edit: func(n *port.Notice) { n.Kind = contract.NoticeFailure }, want: "no failure details"},
		"failure no admin": {
			edit:    func(n *port.Notice) { n.Kind = contract.NoticeFailure },
			noAdmin: true, want: "no admin contact",
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			n := notice(contract.NoticeT14)
			c.edit(&n)
			admin := adminAddr
			if c.noAdmin {
				admin = nil
			}
			_, err := tpl.Compose(n, fromAddr, admin)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			for _, s := range []string{"jo.bloggs", "example.nhs", "it-admin", "migration@"} {
				assert.NotContains(t, err.Error(), s, "errors carry no address")
			}
		})
	}
}

func TestValidKey(t *testing.T) {
	for _, k := range []string{"a", "9f86d081884c7d65", "A-b_C"} {
		assert.NoError(t, notices.ValidKey(k), k)
	}
	for _, k := range []string{"", "../x", "a b", "a.b", "a@b", "é", "a\n"} {
		assert.Error(t, notices.ValidKey(k), "%q", k)
	}
	assert.EqualError(t, notices.ValidKey(""), "empty mailbox key")
	assert.False(t, strings.HasPrefix(notices.ValidKey("a/b").Error(), "notices:"), "no prefix: the caller adds its own")
}

func TestBareMessageID(t *testing.T) {
	bare, err := notices.BareMessageID("<abc.t14@mailwave.invalid>")
	require.NoError(t, err)
	assert.Equal(t, "abc.t14@mailwave.invalid", bare)
	bare, err = notices.BareMessageID("abc@x")
	require.NoError(t, err)
	assert.Equal(t, "abc@x", bare)

	for id, want := range map[string]string{
		"":          "no Message-ID",
		"<>":        "no Message-ID",
		"<abc>":     "malformed Message-ID",
		"<a b@c>":   "malformed Message-ID",
		"<a@b>\r\n": "malformed Message-ID",
		"<<a@b>>":   "malformed Message-ID",
	} {
		_, err := notices.BareMessageID(id)
		require.Error(t, err, "%q", id)
		assert.Contains(t, err.Error(), want, "%q", id)
	}
}
