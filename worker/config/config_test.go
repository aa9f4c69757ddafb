package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func writeCA(t *testing.T, dir, name string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "test CA"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IsCA:         true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return write(t, dir, name, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
}

// loadProblems loads a file that must fail and returns its problems as
// strings.
func loadProblems(t *testing.T, path string) []string {
	t.Helper()
	f, err := Load(path)
	require.Error(t, err)
	assert.Nil(t, f)
	var ps Problems
	require.ErrorAs(t, err, &ps)
	out := strings.Split(err.Error(), "\n")
	require.Len(t, out, len(ps))
	return out
}

const validFile = `secrets_file: secrets.yaml
organisations:
  - name: trust-a
    domains: [Trust-A.example, a2.example]
    source: &src
      host: imap.a.example
      ca_file: certs/ca.pem
      auth:
        password_secret: imap-src
    target:
      host: imap.new.example
      security: starttls
      auth:
        mechanism: xoauth2
        username: "{local}@new.example"
        token_secret: "tok-{local}"
    notifier:
      kind: smtp
      from: "Migration <migration@a.example>"
      templates_dir: templates
      smtp:
        host: smtp.a.example
        insecure_skip_verify: true
        username: migration
        password_secret: smtp-pw
        ledger_dir: ledger
    router:
      kind: transport_map
      transport_map:
        path: postfix/transport
        next_hop: "smtp:[mx.new.example]:25"
        command: [postmap, postfix/transport]
  - name: trust-b
    default: true
    source: *src
    target:
      <<: *src
      host: imap.b.example
      security: none
    copy:
      window: 4
      max_message_bytes: 1000
      bad_item_limit: 5
      bytes_per_second: 1_000_000
      folder_map: {"INBOX.Old": "Archive/Old"}
    notifier:
      kind: outbox
      from: b@b.example
      admin_contact: it@b.example
      outbox: {dir: out}
    router:
      kind: webhook
      webhook:
        url: https://dir.example/cutover
        header_secrets: {Authorization: dir-token}
        timeout: 2s
  - name: sim
    source: {host: s, auth: {password_secret: p}}
    target: {host: t, auth: {password_secret: p}}
    notifier: {kind: outbox, from: s@sim.example, outbox: {dir: /abs/out}}
    router: {kind: sim, sim: {dir: estate}}
`

func TestLoadValidFile(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "certs"), 0o700))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "templates"), 0o700))
	writeCA(t, dir, "certs/ca.pem")
	path := write(t, dir, "mailwave.yaml", validFile)

	f, err := Load(path)
	require.NoError(t, err)
	require.Len(t, f.Orgs, 3)
	assert.Equal(t, path, f.Path)
	assert.Equal(t, filepath.Join(dir, "secrets.yaml"), f.SecretsFile)

	a := f.Orgs[0]
	assert.Equal(t, "trust-a", a.Name)
	assert.Equal(t, []string{"trust-a.example", "a2.example"}, a.Domains)
	assert.False(t, a.Default)
	assert.Equal(t, IMAP{
		Host: "imap.a.example", Port: 993, Security: "tls", CAFile: filepath.Join(dir, "certs/ca.pem"),
		Auth: Auth{Mechanism: "plain", Username: "{address}", PasswordSecret: "imap-src"},
	}, a.Copier.Source)
	assert.Equal(t, IMAP{
		Host: "imap.new.example", Port: 143, Security: "starttls",
		Auth: Auth{Mechanism: "xoauth2", Username: "{local}@new.example", TokenSecret: "tok-{local}"},
	}, a.Copier.Target)
	assert.Equal(t, Copy{Window: 16, MaxMessageBytes: 36700160}, a.Copy)
	assert.Equal(t, Notifier{
		Kind: "smtp", From: "Migration <migration@a.example>", TemplatesDir: filepath.Join(dir, "templates"),
		SMTP: SMTP{
			Host: "smtp.a.example", Port: 587, Security: "starttls", InsecureSkipVerify: true, Username: "migration",
			PasswordSecret: "smtp-pw", AuthMechanism: "plain", LedgerDir: filepath.Join(dir, "ledger"),
		},
	}, a.Notifier)
	assert.Equal(t, Router{Kind: "transport_map", TransportMap: TransportMap{
		Path:           filepath.Join(dir, "postfix/transport"),
		NextHop:        "smtp:[mx.new.example]:25",
		Command:        []string{"postmap", "postfix/transport"},
		CommandTimeout: 30 * time.Second,
	}}, a.Router)

	b := f.Orgs[1]
	assert.True(t, b.Default)
	assert.Equal(t, a.Copier.Source, b.Copier.Source, "the alias gives the same endpoint")
	// Merged from the anchor, with host and security overridden and the
	// port defaulted for the new security.
	assert.Equal(t, IMAP{
		Host: "imap.b.example", Port: 143, Security: "none", CAFile: a.Copier.Source.CAFile,
		Auth: Auth{Mechanism: "plain", Username: "{address}", PasswordSecret: "imap-src"},
	}, b.Copier.Target)
	assert.Equal(t, Copy{Window: 4, MaxMessageBytes: 1000, BadItemLimit: 5, BytesPerSecond: 1_000_000,
		FolderMap: map[string]string{"INBOX.Old": "Archive/Old"}}, b.Copy)
	assert.Equal(t, Notifier{Kind: "outbox", From: "b@b.example", AdminContact: "it@b.example",
		Outbox: Outbox{Dir: filepath.Join(dir, "out")}}, b.Notifier)
	assert.Equal(t, Router{Kind: "webhook", Webhook: Webhook{
		URL: "https://dir.example/cutover", HeaderSecrets: map[string]string{"Authorization": "dir-token"},
		Attempts: 3, Timeout: 2 * time.Second,
	}}, b.Router)

	s := f.Orgs[2]
	assert.Equal(t, "/abs/out", s.Notifier.Outbox.Dir, "absolute paths stay as they are")
	assert.Equal(t, Router{Kind: "sim", Sim: Sim{Dir: filepath.Join(dir, "estate")}}, s.Router)
}

func TestLoadExample(t *testing.T) {
	f, err := Load("example.yaml")
	require.NoError(t, err)
	require.Len(t, f.Orgs, 2)
	assert.Equal(t, "trust-a", f.Orgs[0].Name)
	assert.Equal(t, f.Orgs[0].Copier.Source, f.Orgs[1].Copier.Source)
	assert.Equal(t, "imap.new.trust-b.example", f.Orgs[1].Copier.Target.Host)
	assert.Equal(t, "migrator", f.Orgs[1].Copier.Target.Auth.MasterUser)
}

const badFile = `secrets_file: secrets.yaml
organisations:
  - name: trust-a
    domains: [a.example, "bad@domain"]
    default: true
    source:
      host: imap.a.example
      port: 70000
      security: ssl
      ca_file: missing-ca.pem
      auth:
        mechanism: xoauth2
        password_secret: pw
        username: "{user}@x"
    target:
      port: 0
      auth: {password_secret: t}
    copy:
      window: 0
      max_message_bytes: -1
      bad_item_limit: -2
      bytes_per_second: lots
    notifier:
      kind: smtp
      from: "not an address"
      outbox: {dir: x}
    router:
      kind: transport_map
      transport_map:
        next_hop: "smtp: [mx]"
        command_timeout: soon
      webhook: {url: https://x.example}
  - name: Trust-A
    domains: [A.example]
    default: true
    source: {host: h, auth: {password_secret: p}}
    target: {host: h, auth: {password_secret: p}}
    notifier: {kind: outbox, from: a@b.example}
    router: {kind: webhook, webhook: {url: "ftp://x", attempts: 0, timeout: 5}}
  - name: c
    sorce: {}
`

func TestLoadReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "mailwave.yaml", badFile)
	t.Chdir(dir) // so that messages name the file as an operator would
	got := loadProblems(t, "mailwave.yaml")

	want := []string{
		`mailwave.yaml:4: organisations[0].domains[1]: "bad@domain" is not a domain`,
		`mailwave.yaml:8: organisations[0].source.port: 70000 is not a port (1-65535)`,
		`mailwave.yaml:9: organisations[0].source.security: "ssl" is not one of tls, starttls, none`,
		`mailwave.yaml:10: organisations[0].source.ca_file: ` + filepath.Join(dir, "missing-ca.pem") + ` does not exist`,
		`mailwave.yaml:11: organisations[0].source.auth.token_secret: required for mechanism xoauth2 (a static token), or app (app-only tokens)`,
		`mailwave.yaml:13: organisations[0].source.auth.password_secret: not used by mechanism xoauth2`,
		`mailwave.yaml:14: organisations[0].source.auth.username: unknown placeholder {user} in "{user}@x" (use {address}, {local} or {domain})`,
		`mailwave.yaml:15: organisations[0].target.host: required`,
		`mailwave.yaml:16: organisations[0].target.port: 0 is not a port (1-65535)`,
		`mailwave.yaml:19: organisations[0].copy.window: 0 is not in 1-256`,
		`mailwave.yaml:20: organisations[0].copy.max_message_bytes: -1 must be more than zero`,
		`mailwave.yaml:21: organisations[0].copy.bad_item_limit: -2 must be 0 or more`,
		`mailwave.yaml:22: organisations[0].copy.bytes_per_second: "lots" is not a whole number`,
		`mailwave.yaml:23: organisations[0].notifier.smtp: required for kind smtp`,
		`mailwave.yaml:25: organisations[0].notifier.from: "not an address" is not an RFC 5322 address: no angle-addr`,
		`mailwave.yaml:26: organisations[0].notifier.outbox: not used by kind smtp`,
		`mailwave.yaml:29: organisations[0].router.transport_map.path: required`,
		`mailwave.yaml:30: organisations[0].router.transport_map.next_hop: "smtp: [mx]" must not contain whitespace`,
		`mailwave.yaml:31: organisations[0].router.transport_map.command_timeout: "soon" is not a duration (e.g. 30s, 2m)`,
		`mailwave.yaml:32: organisations[0].router.webhook: not used by kind transport_map`,
		`mailwave.yaml:33: organisations[1].name: "Trust-A" is already the name of organisations[0] (line 3); names are matched case-insensitively`,
		`mailwave.yaml:34: organisations[1].domains[0]: a.example is already claimed by organisations[0] (trust-a)`,
		`mailwave.yaml:35: organisations[1].default: only one organisation may be the default; organisations[0] (line 5) already is`,
		`mailwave.yaml:38: organisations[1].notifier.outbox: required for kind outbox`,
		`mailwave.yaml:39: organisations[1].router.webhook.url: "ftp://x" is not an absolute http(s) URL`,
		`mailwave.yaml:39: organisations[1].router.webhook.attempts: 0 is not in 1-100`,
		`mailwave.yaml:39: organisations[1].router.webhook.timeout: "5" is not a duration (e.g. 30s, 2m)`,
		`mailwave.yaml:40: organisations[2].source: required for the imap copier`,
		`mailwave.yaml:40: organisations[2].target: required for the imap copier`,
		`mailwave.yaml:40: organisations[2].notifier: required`,
		`mailwave.yaml:40: organisations[2].router: required`,
		`mailwave.yaml:41: organisations[2].sorce: unknown key (expected one of name, domains, default, catch_all, copier, source, target, copy, sim, notifier, router)`,
	}
	assert.Equal(t, want, got)
}

// Optional keys spelled out as "" (as in the schema's sample) count as unset;
// a required one given as "" is reported at its own line.
func TestLoadEmptyStrings(t *testing.T) {
	dir := t.TempDir()
	ok := `organisations:
  - name: a
    source: &s
      host: h
      ca_file: ""
      auth: {mechanism: plain, master_user: "", password_secret: p, token_secret: ""}
    target: *s
    notifier: {kind: smtp, from: a@a.example, admin_contact: "", templates_dir: "",
      smtp: {host: m, username: "", password_secret: "", ledger_dir: l}}
    router: {kind: webhook, webhook: {url: "https://d.example/", status_url: ""}}
`
	f, err := Load(write(t, dir, "ok.yaml", ok))
	require.NoError(t, err)
	assert.Equal(t, "", f.Orgs[0].Copier.Source.Auth.TokenSecret)
	assert.Equal(t, "", f.Orgs[0].Notifier.SMTP.AuthMechanism, "no login, so no mechanism")

	path := write(t, dir, "bad.yaml", strings.Replace(strings.Replace(ok, "password_secret: p,", "password_secret: \"\",", 1),
		`username: "",`, "username: bot,", 1))
	assert.Equal(t, []string{
		path + `:6: organisations[0].source.auth.password_secret: required for mechanism plain`,
		path + `:6: organisations[0].target.auth.password_secret: required for mechanism plain`,
		path + `:9: organisations[0].notifier.smtp.password_secret: required when username is set`,
	}, loadProblems(t, path))
}

func TestLoadUnknownKeys(t *testing.T) {
	dir := t.TempDir()
	path := write(t, dir, "c.yaml", `organisations:
  - name: a
    source: &s
      host: h
      prot: 993
      auth: {password_secret: p, pasword_secret: q}
    target: *s
    notifier: {kind: outbox, from: a@a.example, outbox: {dir: o, size: 1}}
    router: {kind: sim, sim: {dir: d}}
secret_file: x
`)
	got := loadProblems(t, path)
	assert.Equal(t, []string{
		path + `:5: organisations[0].source.prot: unknown key (expected one of host, port, security, ca_file, insecure_skip_verify, auth)`,
		path + `:5: organisations[0].target.prot: unknown key (expected one of host, port, security, ca_file, insecure_skip_verify, auth)`,
		path + `:6: organisations[0].source.auth.pasword_secret: unknown key (expected one of mechanism, username, master_user, password_secret, token_secret, app)`,
		path + `:6: organisations[0].target.auth.pasword_secret: unknown key (expected one of mechanism, username, master_user, password_secret, token_secret, app)`,
		path + `:8: organisations[0].notifier.outbox.size: unknown key (expected one of dir)`,
		path + `:10: secret_file: unknown key (expected one of secrets_file, organisations)`,
	}, got)
}

func TestLoadFileLevelProblems(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, body, want string
	}{
		{"empty", "# nothing\n", `empty.yaml: the file is empty`},
		{"syntax", "organisations:\n  - name: a\n\t- name: b\n", `syntax.yaml:2: found a tab character that violates indentation`},
		{"none", "organisations: []\n", `none.yaml:1: organisations: at least one organisation is required`},
		{"missing", "secrets_file: s\n", `missing.yaml:1: organisations: required (a list of organisations)`},
		{"scalar", "organisations: lots\n", `missing.yaml:1: organisations: expected a list, got "lots"`},
		{"twice", "organisations: []\norganisations: []\n", `twice.yaml:2: organisations: given twice (first on line 1)`},
		{"docs", "organisations: []\n---\norganisations: []\n", `docs.yaml:2: only one YAML document is allowed`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			write(t, dir, tc.name+".yaml", tc.body)
			t.Chdir(dir)
			got := loadProblems(t, tc.name+".yaml")
			assert.Contains(t, got, strings.Replace(tc.want, "missing.yaml", tc.name+".yaml", 1))
		})
	}
	_, err := Load(filepath.Join(dir, "absent.yaml"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestLoadBadCAFile(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "ca.pem", "not a certificate\n")
	path := write(t, dir, "c.yaml", `organisations:
  - name: a
    source: {host: h, ca_file: ca.pem, auth: {password_secret: p}}
    target: {host: h, security: none, ca_file: ca.pem, auth: {password_secret: p}}
    notifier: {kind: outbox, from: a@a.example, templates_dir: ca.pem, outbox: {dir: o}}
    router: {kind: sim, sim: {dir: d}}
`)
	got := loadProblems(t, path)
	ca := filepath.Join(dir, "ca.pem")
	assert.Equal(t, []string{
		path + `:3: organisations[0].source.ca_file: ` + ca + ` holds no PEM certificates`,
		path + `:4: organisations[0].target.ca_file: ` + ca + ` holds no PEM certificates`,
		path + `:5: organisations[0].notifier.templates_dir: ` + ca + ` is not a directory`,
	}, got)
}

func TestOrgFor(t *testing.T) {
	two := &File{Path: "mailwave.yaml", Orgs: []Org{
		{Name: "Trust-A", Domains: []string{"a.example"}},
		{Name: "trust-b", Domains: []string{"b.example"}},
	}}
	withDefault := &File{Path: "mailwave.yaml", Orgs: append(append([]Org(nil), two.Orgs...), Org{Name: "rest", Default: true})}
	catchAll := &File{Path: "flags", Orgs: []Org{{Name: "all", Default: true, CatchAll: true}}}

	for _, tc := range []struct {
		name          string
		f             *File
		org, address  string
		want, wantErr string
	}{
		{"by name, any case", two, "trust-a", "x@b.example", "Trust-A", ""},
		{"by domain, any case", two, "", "x@B.Example", "trust-b", ""},
		{"by domain, no org", two, "", "x@a.example", "Trust-A", ""},
		{"default", withDefault, "", "x@c.example", "rest", ""},
		{"an unknown org is an error, never another organisation's servers", withDefault, "nobody", "someone@a.example", "",
			`organisation "nobody" is not in mailwave.yaml`},
		{"a catch-all takes any org", catchAll, "org008", "x@c.example", "all", ""},
		{"none", two, "", "someone@c.example", "",
			`no organisation in mailwave.yaml matches org "" or the address's domain "c.example", and none is the default`},
		{"none, no domain", two, "", "someone", "",
			`no organisation in mailwave.yaml matches org "" or the address's domain (the address has none), and none is the default`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := tc.f.OrgFor(tc.org, tc.address)
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				assert.NotContains(t, err.Error(), "@")
				assert.NotContains(t, err.Error(), "someone")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, o.Name)
			assert.Same(t, o, &tc.f.Orgs[indexOf(tc.f, tc.want)], "a pointer into the file, not a copy")
		})
	}
}

func indexOf(f *File, name string) int {
	for i, o := range f.Orgs {
		if o.Name == name {
			return i
		}
	}
	return -1
}

func TestLoadWrongTypes(t *testing.T) {
	dir := t.TempDir()
	path := write(t, dir, "c.yaml", `organisations:
  - just-a-name
  - name: [a]
    default: maybe
    source: imap.example
    target:
      <<: [{host: h}, {host: ignored, port: "993"}]
      auth: {password_secret: p}
    copy: {window: 1.5, folder_map: [a]}
    notifier: {kind: outbox, from: a@a.example, outbox: {dir: o}}
    router: {kind: transport_map, transport_map: {path: p, next_hop: x, command: [a, {b: c}], command_timeout: -1s}}
`)
	assert.Equal(t, []string{
		path + `:2: organisations[0]: expected a mapping, got "just-a-name"`,
		path + `:3: organisations[1].name: expected a string, got a list`,
		path + `:4: organisations[1].default: "maybe" is not true or false`,
		path + `:5: organisations[1].source: expected a mapping, got "imap.example"`,
		path + `:7: organisations[1].target.port: "993" is not a whole number`,
		path + `:9: organisations[1].copy.window: "1.5" is not a whole number`,
		path + `:9: organisations[1].copy.folder_map: expected a mapping, got a list`,
		path + `:11: organisations[1].router.transport_map.command[1]: expected a string, got a mapping`,
		path + `:11: organisations[1].router.transport_map.command_timeout: -1s must be more than zero`,
	}, loadProblems(t, path))
}

// laughs is a "billion laughs" of merge keys: each anchor merges the one
// before it ten times, so the last stands for 10^levels mappings.
func laughs(levels int) string {
	var b strings.Builder
	b.WriteString("x0: &l0 {host: h}\n")
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "x%d: &l%d {<<: [", i, i)
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*l%d", i-1)
		}
		b.WriteString("]}\n")
	}
	return b.String()
}

func TestLoadRefusesMergesWithoutBound(t *testing.T) {
	for _, c := range []struct {
		name, doc, want string
	}{
		{"a billion laughs", laughs(9) + `organisations:
  - name: a
    source: {<<: *l9, auth: {password_secret: p}}
    target: {host: t, auth: {password_secret: p}}
    notifier: {kind: outbox, from: a@a.example, outbox: {dir: o}}
    router: {kind: sim, sim: {dir: estate}}
`, "organisations[0].source: merge keys (<<) bring in more than 100000 entries in all: refused"},
		{"many organisations merging one another", laughs(4) + `org: &org
  name: a
  source: {<<: *l4, auth: {password_secret: p}}
  target: {<<: *l4, auth: {password_secret: p}}
  notifier: {kind: outbox, from: a@a.example, outbox: {dir: o}}
  router: {kind: sim, sim: {dir: estate}}
organisations: [` + strings.TrimSuffix(strings.Repeat("*org, ", 20), ", ") + `]
`, "merge keys (<<) bring in more than 100000 entries in all: refused"},
		{"merges nested deeply", "d0: &d0 {host: h}\n" + func() string {
			var b strings.Builder
			for i := 1; i <= 12; i++ {
				fmt.Fprintf(&b, "d%d: &d%d {<<: *d%d}\n", i, i, i-1)
			}
			return b.String()
		}() + `organisations:
  - name: a
    source: {<<: *d12, auth: {password_secret: p}}
    target: {host: t, auth: {password_secret: p}}
    notifier: {kind: outbox, from: a@a.example, outbox: {dir: o}}
    router: {kind: sim, sim: {dir: estate}}
`, "organisations[0].source: merge keys nested too deeply (more than 10 merges within merges)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := write(t, t.TempDir(), "c.yaml", c.doc)
			done := make(chan error, 1)
			go func() {
				_, err := Load(path)
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			// About 20 ms under -race; a billion laughs unbounded, minutes. The
			// bound leaves a loaded machine a hundred times that.
			case <-time.After(2 * time.Second):
				t.Fatal("Load still running after 2s: the merges are not bounded")
			}
			var probs Problems
			require.ErrorAs(t, err, &probs)
			found := 0
			for _, p := range probs {
				if strings.Contains(p.String(), c.want) {
					found++
				}
			}
			assert.Equal(t, 1, found, "reported once: %v", err)
			assert.Less(t, len(probs), 20, "no flood of problems: %v", err)
		})
	}
}

// The SMTP notifier's ledger is a directory or, for a fleet, a postgres://
// database: one of the two.
func TestLedgerURL(t *testing.T) {
	dir := t.TempDir()
	file := func(smtp string) string {
		return `organisations:
  - name: a
    source: {host: h, auth: {password_secret: p}}
    target: {host: h, auth: {password_secret: p}}
    notifier: {kind: smtp, from: a@a.example, smtp: {host: m, ` + smtp + `}}
    router: {kind: webhook, webhook: {url: "https://d.example/"}}
`
	}
	f, err := Load(write(t, dir, "url.yaml", file(`ledger_url: "postgres://mailwave@db.example/mailwave"`)))
	require.NoError(t, err)
	assert.Equal(t, "postgres://mailwave@db.example/mailwave", f.Orgs[0].Notifier.SMTP.LedgerURL)
	assert.Empty(t, f.Orgs[0].Notifier.SMTP.LedgerDir)

	ps := loadProblems(t, write(t, dir, "both.yaml", file(`ledger_url: "postgres://db/m", ledger_dir: l`)))
	assert.Contains(t, strings.Join(ps, "\n"), "ledger_dir: not used by a ledger_url")
	ps = loadProblems(t, write(t, dir, "notpg.yaml", file(`ledger_url: "mysql://db/m"`)))
	assert.Contains(t, strings.Join(ps, "\n"), "ledger_url: want a postgres:// URL")
}

// An organisation may be the simulated estate (for a fleet's tests and
// demonstrations) and may cut over on its routing host's task queue; bad
// values are named.
func TestSimulatedEstateAndRoutingHost(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mailwave.yaml")
	write := func(body string) {
		require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
	}
	write(`organisations:
  - name: sim
    default: true
    catch_all: true
    sim: {dir: estate, time_scale: 7200, bytes_per_second: 1048576, not_found_rate: 0.01}
    notifier: {kind: outbox, from: m@sim.example, outbox: {dir: outbox}}
    router: {kind: sim, task_queue: mta-1, sim: {dir: estate}}
`)
	f, err := Load(path)
	require.NoError(t, err)
	o := f.Orgs[0]
	require.Equal(t, CopierSim, o.Copier.Kind)
	assert.Equal(t, Sim{Dir: filepath.Join(dir, "estate"), TimeScale: 7200, BytesPerSecond: 1 << 20,
		ThrottleRetryAfter: 5 * time.Second, NotFoundRate: 0.01}, o.Copier.Sim)
	assert.Equal(t, "mta-1", o.Router.TaskQueue)
	other, err := f.OrgFor("trust-17", "someone@trust-17.example")
	require.NoError(t, err, "catch_all takes an organisation the file does not know")
	assert.Equal(t, "sim", other.Name)

	write(`organisations:
  - name: sim
    default: true
    sim: {dir: estate, time_scale: fast, not_found_rate: 2}
    source: {host: imap.example}
    notifier: {kind: outbox, from: m@sim.example, outbox: {dir: outbox}}
    router: {kind: sim, task_queue: "mta 1", sim: {dir: estate}}
`)
	_, err = Load(path)
	require.Error(t, err)
	for _, want := range []string{
		`:4: organisations[0].sim.time_scale: "fast" is not a number from 0 to 1e+09`,
		`:4: organisations[0].sim.not_found_rate: "2" is not a number from 0 to 1`,
		`:5: organisations[0].source: not used by the sim copier`,
		`:7: organisations[0].router.task_queue: "mta 1" holds a space or a control character`,
	} {
		assert.Contains(t, err.Error(), want)
	}
}

// An organisation's name is shown in plain text (metrics labels, logs): an
// address there is refused.
func TestLoadRefusesAnAddressForAnOrganisationName(t *testing.T) {
	dir := t.TempDir()
	path := write(t, dir, "c.yaml", `organisations:
  - name: jo.bloggs@trust.example
    sim: {dir: d}
    notifier: {kind: outbox, from: a@a.example, outbox: {dir: o}}
    router: {kind: sim, sim: {dir: d}}
`)
	assert.Equal(t, []string{
		path + `:2: organisations[0].name: an organisation's name is shown in plain text (metrics, logs) and must not be an address`,
	}, loadProblems(t, path))
}

// TestCopierHasAKind: the copier is chosen by its kind, as the notifier
// and router are; the layout from before (source and target, or sim, at
// the organisation's level) means the same; mixing the two, an unknown
// kind and a kind without its settings are named.
func TestCopierHasAKind(t *testing.T) {
	dir := t.TempDir()
	load := func(org string) (*File, error) {
		path := filepath.Join(dir, "mailwave.yaml")
		body := "organisations:\n  - name: trust-a\n" + org +
			"    notifier: {kind: outbox, from: m@a.example, outbox: {dir: outbox}}\n    router: {kind: sim, sim: {dir: estate}}\n"
		require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
		return Load(path)
	}
	imap := "{host: 127.0.0.1, security: none, auth: {username: \"{address}\", password_secret: pw}}"

	kinded, err := load("    copier: {kind: imap, source: " + imap + ", target: " + imap + "}\n    copy: {window: 8}\n")
	require.NoError(t, err)
	legacy, err := load("    source: " + imap + "\n    target: " + imap + "\n    copy: {window: 8}\n")
	require.NoError(t, err)
	assert.Equal(t, CopierIMAP, kinded.Orgs[0].Copier.Kind)
	assert.Equal(t, legacy.Orgs[0], kinded.Orgs[0], "the layout from before means the same")
	assert.Equal(t, "127.0.0.1", kinded.Orgs[0].Copier.Target.Host)
	assert.Equal(t, 8, kinded.Orgs[0].Copy.Window)

	sim, err := load("    copier: {kind: sim, sim: {dir: estate}}\n")
	require.NoError(t, err)
	assert.Equal(t, CopierSim, sim.Orgs[0].Copier.Kind)
	assert.Equal(t, filepath.Join(dir, "estate"), sim.Orgs[0].Copier.Sim.Dir)

	g, err := load("    copier: {kind: graph, source: " + imap + ", graph: {tenant: contoso, client_id: app, client_secret: graph-secret, requests: 500, request_window: 1m}}\n")
	require.NoError(t, err)
	assert.Equal(t, Graph{App: App{Tenant: "contoso", ClientID: "app", ClientSecret: "graph-secret"}, Concurrent: 4,
		UploadBytes: 150_000_000, UploadWindow: 5 * time.Minute, Requests: 500, RequestWindow: time.Minute}, g.Orgs[0].Copier.Graph,
		"the documented limits by default")

	for name, tc := range map[string]struct{ org, want string }{
		"unknown kind": {"    copier: {kind: ews}\n", `copier.kind: "ews" is not one of imap, graph, sim`},
		"no kind":      {"    copier: {source: " + imap + "}\n", "copier.kind: required (one of imap, graph, sim)"},
		"graph without its tenant": {"    copier: {kind: graph, source: " + imap + ", graph: {client_id: app, client_secret: graph-secret}}\n",
			"copier.graph.tenant: required"},
		"graph without a secret": {"    copier: {kind: graph, source: " + imap + ", graph: {tenant: t, client_id: app}}\n",
			"copier.graph.client_secret: required (or certificate_file and key_file)"},
		"settings missing": {"    copier: {kind: imap, source: " + imap + "}\n", "copier.target: required for the imap copier"},
		"another kind's":   {"    copier: {kind: sim, sim: {dir: estate}, source: " + imap + "}\n", "copier.source: not used by the sim copier"},
		"both layouts":     {"    copier: {kind: sim, sim: {dir: estate}}\n    source: " + imap + "\n", "organisations[0].source: give it under copier"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := load(tc.org)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestAnXOAuth2LoginWithAnApplication: an IMAP endpoint's xoauth2 login
// takes app-only tokens from an application (app, read as the graph
// copier's is) in place of a static token per user; giving both, or
// neither, or an app to another mechanism, is named.
func TestAnXOAuth2LoginWithAnApplication(t *testing.T) {
	dir := t.TempDir()
	load := func(target string) (*File, error) {
		path := filepath.Join(dir, "mailwave.yaml")
		body := "organisations:\n  - name: trust-a\n" +
			"    copier: {kind: imap, source: {host: 127.0.0.1, security: none, auth: {password_secret: pw}}, target: " + target + "}\n" +
			"    notifier: {kind: outbox, from: m@a.example, outbox: {dir: outbox}}\n    router: {kind: sim, sim: {dir: estate}}\n"
		require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
		return Load(path)
	}
	f, err := load("{host: outlook.office365.com, auth: {mechanism: xoauth2, app: {tenant: contoso, client_id: app-1, client_secret: imap-app, login_url: \"https://login.example\"}}}")
	require.NoError(t, err)
	a := f.Orgs[0].Copier.Target.Auth
	require.NotNil(t, a.App)
	assert.Equal(t, App{Tenant: "contoso", ClientID: "app-1", ClientSecret: "imap-app", LoginURL: "https://login.example"}, *a.App)
	assert.Equal(t, "{address}", a.Username, "logged in to as the mailbox's address")
	assert.Empty(t, a.TokenSecret)
	assert.Nil(t, f.Orgs[0].Copier.Source.Auth.App)

	f, err = load("{host: h, auth: {mechanism: xoauth2, app: {tenant: contoso, client_id: app-1, certificate_file: app.pem, key_file: app-key.pem}}}")
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "app.pem"), f.Orgs[0].Copier.Target.Auth.App.CertificateFile, "resolved against the file's directory")

	for name, tc := range map[string]struct{ target, want string }{
		"both": {"{host: h, auth: {mechanism: xoauth2, token_secret: tok, app: {tenant: t, client_id: c, client_secret: s}}}",
			"copier.target.auth.app: give token_secret (a static token) or app (app-only tokens), not both"},
		"neither": {"{host: h, auth: {mechanism: xoauth2}}",
			"copier.target.auth.token_secret: required for mechanism xoauth2 (a static token), or app (app-only tokens)"},
		"another mechanism": {"{host: h, auth: {mechanism: plain, password_secret: p, app: {tenant: t, client_id: c, client_secret: s}}}",
			"copier.target.auth.app: not used by mechanism plain"},
		"no tenant": {"{host: h, auth: {mechanism: xoauth2, app: {client_id: c, client_secret: s}}}",
			"copier.target.auth.app.tenant: required"},
		"no secret": {"{host: h, auth: {mechanism: xoauth2, app: {tenant: t, client_id: c}}}",
			"copier.target.auth.app.client_secret: required (or certificate_file and key_file)"},
		"a graph key": {"{host: h, auth: {mechanism: xoauth2, app: {tenant: t, client_id: c, client_secret: s, graph_url: \"https://g.example\"}}}",
			"copier.target.auth.app.graph_url: unknown key"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := load(tc.target)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
