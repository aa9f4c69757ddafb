package outbox_test

import (
	"context"
	"fmt"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/mail/notices"
	"mailwave/mail/outbox"
	"mailwave/mail/port"
	"mailwave/testkit/smtptest"
)

const key = "9f86d081884c7d65"

func notice(key string, kind contract.NoticeKind) port.Notice {
	return port.Notice{
		Mailbox: contract.MailboxRef{
			Key:         key,
			Address:     "jo.bloggs@example.nhs.invalid",
			Org:         "Example NHS Trust",
			DisplayName: "Jo Bloggs",
		},
		Kind:      kind,
		MessageID: contract.NoticeMessageID(key, kind),
		WaveID:    "wave-07",
		MigrateAt: time.Date(2026, time.December, 5, 20, 0, 0, 0, time.UTC),
	}
}

func newOutbox(t *testing.T, tpl *notices.Templates) (*outbox.Outbox, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "outbox") // New creates it
	o, err := outbox.New(outbox.Options{Dir: dir, Templates: tpl})
	require.NoError(t, err)
	return o, dir
}

func TestSendThreeKinds(t *testing.T) {
	o, dir := newOutbox(t, nil)
	ctx := context.Background()
	tpl, err := notices.Load("")
	require.NoError(t, err)

	before := time.Now().Add(-time.Second)
	for _, kind := range contract.NoticeKinds {
		already, err := o.Send(ctx, notice(key, kind))
		require.NoError(t, err)
		assert.False(t, already)
	}
	after := time.Now().Add(time.Second)

	assert.ElementsMatch(t, []string{key + "-t14.eml", key + "-t1.eml", key + "-success.eml"}, smtptest.FileNames(t, dir))

	for _, kind := range contract.NoticeKinds {
		t.Run(string(kind), func(t *testing.T) {
			n := notice(key, kind)
			want, err := tpl.Render(n)
			require.NoError(t, err)

			m := smtptest.ParseFile(t, filepath.Join(dir, key+"-"+string(kind)+".eml"))
			h := m.Header

			from, err := mail.ParseAddress(h.Get("From"))
			require.NoError(t, err)
			assert.Equal(t, &mail.Address{Name: "NHS Mail Migration", Address: "migration@mailwave.invalid"}, from)

			to, err := mail.ParseAddress(h.Get("To"))
			require.NoError(t, err)
			assert.Equal(t, &mail.Address{Name: "Jo Bloggs", Address: "jo.bloggs@example.nhs.invalid"}, to)

			assert.Equal(t, want.Subject, h.Get("Subject"))
			assert.Equal(t, fmt.Sprintf("Message-ID: <%s.%s@notices.mailwave.invalid>", kind, key), m.RawMessageID)
			assert.Equal(t, n.MessageID, h.Get("Message-ID"))
			assert.Equal(t, string(kind), h.Get("X-Mailwave-Kind"))
			assert.Equal(t, "wave-07", h.Get("X-Mailwave-Wave"))

			date, err := h.Date()
			require.NoError(t, err)
			assert.True(t, date.After(before) && date.Before(after), "Date %v is the send time", date)

			for _, body := range []string{m.Text, m.HTML} {
				assert.Contains(t, body, "Jo Bloggs")
				assert.Contains(t, body, "Saturday 5 December 2026 at 20:00 UTC")
			}
			assert.Equal(t, want.Text, strings.ReplaceAll(m.Text, "\r\n", "\n"))
		})
	}
}

func TestSendIsIdempotent(t *testing.T) {
	o, dir := newOutbox(t, nil)
	ctx := context.Background()
	n := notice(key, contract.NoticeT14)
	path := filepath.Join(dir, key+"-t14.eml")

	already, err := o.Send(ctx, n)
	require.NoError(t, err)
	assert.False(t, already)
	first, err := os.ReadFile(path)
	require.NoError(t, err)

	already, err = o.Send(ctx, n)
	require.NoError(t, err)
	assert.True(t, already)
	assert.Equal(t, []string{key + "-t14.eml"}, smtptest.FileNames(t, dir), "one file, no temporaries left")
	second, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, first, second, "an already-sent message is left as it was")

	// A file under the name with another Message-ID (not ours) is replaced.
	require.NoError(t, os.WriteFile(path, []byte("Message-ID: <other@x>\r\n\r\nhi\r\n"), 0o600))
	already, err = o.Send(ctx, n)
	require.NoError(t, err)
	assert.False(t, already)
	assert.Equal(t, n.MessageID, smtptest.ParseFile(t, path).Header.Get("Message-ID"))
}

func TestSent(t *testing.T) {
	o, _ := newOutbox(t, nil)
	ctx := context.Background()

	sent, err := o.Sent(ctx, key, contract.NoticeT1)
	require.NoError(t, err)
	assert.False(t, sent)

	_, err = o.Send(ctx, notice(key, contract.NoticeT1))
	require.NoError(t, err)

	sent, err = o.Sent(ctx, key, contract.NoticeT1)
	require.NoError(t, err)
	assert.True(t, sent)

	sent, err = o.Sent(ctx, key, contract.NoticeSuccess)
	require.NoError(t, err)
	assert.False(t, sent)

	_, err = o.Sent(ctx, "../etc", contract.NoticeT1)
	assert.Error(t, err)
	_, err = o.Sent(ctx, key, "t7")
	assert.Error(t, err)
}

func TestSendValidation(t *testing.T) {
	o, dir := newOutbox(t, nil)
	ctx := context.Background()
	const addr = "jo.bloggs@example.nhs.invalid"

	cases := map[string]struct {
		edit func(*port.Notice)
		want string
	}{
		"empty key":       {func(n *port.Notice) { n.Mailbox.Key = "" }, "empty mailbox key"},
		"path key":        {func(n *port.Notice) { n.Mailbox.Key = "../x" }, "mailbox key"},
		"empty address":   {func(n *port.Notice) { n.Mailbox.Address = "" }, "no recipient address"},
		"bad address":     {func(n *port.Notice) { n.Mailbox.Address = "jo.bloggs@" }, "not a valid address"},
		"named address":   {func(n *port.Notice) { n.Mailbox.Address = "Jo <" + addr + ">" }, "not a valid address"},
		"no message id":   {func(n *port.Notice) { n.MessageID = "" }, "no Message-ID"},
		"bad message id":  {func(n *port.Notice) { n.MessageID = "<a b@c>" }, "malformed Message-ID"},
		"unknown kind":    {func(n *port.Notice) { n.Kind = "t7" }, "unknown notice kind"},
		"header in wave":  {func(n *port.Notice) { n.WaveID = "w\r\nBcc: x@y" }, "wave ID"},
		"no migrate time": {func(n *port.Notice) { n.MigrateAt = time.Time{} }, "no migration time"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			n := notice(key, contract.NoticeT14)
			c.edit(&n)
			_, err := o.Send(ctx, n)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			assert.NotContains(t, err.Error(), "jo.bloggs", "errors carry no address")
		})
	}
	assert.Empty(t, smtptest.FileNames(t, dir))
}

func TestSendCancelled(t *testing.T) {
	o, _ := newOutbox(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := o.Send(ctx, notice(key, contract.NoticeT14))
	assert.ErrorIs(t, err, context.Canceled)
}

func TestTemplateOverride(t *testing.T) {
	tplDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(tplDir, "t1.txt.tmpl"),
		[]byte(`{{define "subject"}}Moving tomorrow, {{.DisplayName}}{{end}}See you on the other side.`), 0o600))
	tpl, err := notices.Load(tplDir)
	require.NoError(t, err)
	o, dir := newOutbox(t, tpl)
	ctx := context.Background()

	for _, kind := range contract.NoticeKinds {
		_, err := o.Send(ctx, notice(key, kind))
		require.NoError(t, err)
	}
	assert.Equal(t, "Moving tomorrow, Jo Bloggs", smtptest.ParseFile(t, filepath.Join(dir, key+"-t1.eml")).Header.Get("Subject"))
	assert.Equal(t, "Your mailbox will move on Saturday 5 December 2026", smtptest.ParseFile(t, filepath.Join(dir, key+"-t14.eml")).Header.Get("Subject"))
	assert.Equal(t, "Your mailbox has moved", smtptest.ParseFile(t, filepath.Join(dir, key+"-success.eml")).Header.Get("Subject"))
}

func TestBrokenOverrideNamesFile(t *testing.T) {
	tplDir := t.TempDir()
	path := filepath.Join(tplDir, "success.txt.tmpl")
	require.NoError(t, os.WriteFile(path, []byte(`{{define "subject"}}Moved{{end}}{{if .Org}}`), 0o600))
	_, err := notices.Load(tplDir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), path)
}

func TestNewRejectsBadFrom(t *testing.T) {
	_, err := outbox.New(outbox.Options{Dir: t.TempDir(), From: "not an address"})
	assert.Error(t, err)
	_, err = outbox.New(outbox.Options{})
	assert.Error(t, err)
}

func TestConcurrentSends(t *testing.T) {
	o, dir := newOutbox(t, nil)
	ctx := context.Background()
	const mailboxes = 40

	var wg sync.WaitGroup
	errs := make(chan error, mailboxes*len(contract.NoticeKinds)*2)
	for i := range mailboxes {
		k := fmt.Sprintf("%016x", i)
		for _, kind := range contract.NoticeKinds {
			// Each notice twice at once: a retry racing the original.
			for range 2 {
				wg.Go(func() {
					_, err := o.Send(ctx, notice(k, kind))
					errs <- err
				})
			}
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	files := smtptest.FileNames(t, dir)
	assert.Len(t, files, mailboxes*len(contract.NoticeKinds), "one file per notice, no temporaries left")
	for _, f := range files {
		k, kind, ok := strings.Cut(strings.TrimSuffix(f, ".eml"), "-")
		require.True(t, ok, f)
		m := smtptest.ParseFile(t, filepath.Join(dir, f))
		assert.Equal(t, contract.NoticeMessageID(k, contract.NoticeKind(kind)), m.Header.Get("Message-ID"), "file name and Message-ID agree")
	}
}

func failureNotice(key string) port.Notice {
	n := notice(key, contract.NoticeFailure)
	n.MigrateAt = time.Time{}
	n.Failure = &contract.Failure{Step: "cutover", ErrorType: contract.ErrTypeNoticeNotSent, Reason: "T-14 notice was never sent"}
	return n
}

func TestSendFailureNotice(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	o, err := outbox.New(outbox.Options{Dir: dir, AdminContact: "Trust IT <it-admin@example.nhs.invalid>"})
	require.NoError(t, err)
	ctx := context.Background()

	sent, err := o.Sent(ctx, key, contract.NoticeFailure)
	require.NoError(t, err)
	assert.False(t, sent)

	n := failureNotice(key)
	already, err := o.Send(ctx, n)
	require.NoError(t, err)
	assert.False(t, already)
	assert.Equal(t, []string{key + "-failure.eml"}, smtptest.FileNames(t, dir))

	m := smtptest.ParseFile(t, filepath.Join(dir, key+"-failure.eml"))
	to, err := mail.ParseAddress(m.Header.Get("To"))
	require.NoError(t, err)
	assert.Equal(t, &mail.Address{Name: "Trust IT", Address: "it-admin@example.nhs.invalid"}, to, "to the admin, not the user")
	assert.Equal(t, n.MessageID, m.Header.Get("Message-ID"))
	assert.Equal(t, "failure", m.Header.Get("X-Mailwave-Kind"))
	assert.Equal(t, "Mailbox migration needs support: mailbox "+key, m.Header.Get("Subject"))
	for _, body := range []string{m.Text, m.HTML} {
		assert.Contains(t, body, "a notice to the user could not be sent") // fixed words, never the raw reason
		assert.Contains(t, body, "Jo Bloggs")
		assert.Contains(t, body, "jo.bloggs@example.nhs.invalid")
	}

	sent, err = o.Sent(ctx, key, contract.NoticeFailure)
	require.NoError(t, err)
	assert.True(t, sent)
	already, err = o.Send(ctx, n)
	require.NoError(t, err)
	assert.True(t, already)

	// The admin needs to hear of a mailbox even when its address is unknown.
	n = failureNotice("k2")
	n.Mailbox.Address = ""
	_, err = o.Send(ctx, n)
	require.NoError(t, err)

	n = failureNotice("k3")
	n.Failure = nil
	_, err = o.Send(ctx, n)
	assert.ErrorContains(t, err, "no failure details")
}

func TestFailureNoticeDefaultsToFrom(t *testing.T) {
	o, dir := newOutbox(t, nil)
	_, err := o.Send(context.Background(), failureNotice(key))
	require.NoError(t, err)
	to, err := mail.ParseAddress(smtptest.ParseFile(t, filepath.Join(dir, key+"-failure.eml")).Header.Get("To"))
	require.NoError(t, err)
	assert.Equal(t, "migration@mailwave.invalid", to.Address)
}

func TestNewRejectsBadAdminContact(t *testing.T) {
	_, err := outbox.New(outbox.Options{Dir: t.TempDir(), AdminContact: "it-admin@"})
	assert.ErrorContains(t, err, "AdminContact")
}

// TestRescheduledTwice: a mailbox moved to one date, then to another, is
// told each (the correction's Message-ID is per new date); a retry of one
// is recognised.
func TestRescheduledTwice(t *testing.T) {
	o, dir := newOutbox(t, nil)
	ctx := context.Background()
	first, second := time.Date(2026, 12, 12, 20, 0, 0, 0, time.UTC), time.Date(2026, 12, 19, 20, 0, 0, 0, time.UTC)
	moved := func(to time.Time) port.Notice {
		n := notice(key, contract.NoticeRescheduled)
		n.MigrateAt, n.MessageID = to, contract.RescheduledMessageID(key, to)
		return n
	}
	for _, step := range []struct {
		to      time.Time
		already bool
	}{{first, false}, {first, true}, {second, false}} {
		already, err := o.Send(ctx, moved(step.to))
		require.NoError(t, err)
		assert.Equal(t, step.already, already, "to %s", step.to)
	}
	m := smtptest.ParseFile(t, filepath.Join(dir, key+"-rescheduled.eml"))
	assert.Equal(t, contract.RescheduledMessageID(key, second), m.Header.Get("Message-ID"))
}
