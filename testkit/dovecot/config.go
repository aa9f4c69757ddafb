package dovecot

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
)

// oauth2Conf is the oauth2 passdb's settings file, in the server's
// directory.
const oauth2Conf = "oauth2.conf.ext"

// config renders dovecot.conf. Everything it names lives under s.Dir, so the
// system's /etc/dovecot, /var/run/dovecot and /var/lib/dovecot are never
// touched and servers do not meet each other.
func (s *Server) config(ids identities) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	dir := s.Dir
	o := s.opts

	p("# Written by mailwave/testkit/dovecot for a throwaway test server.")
	p("base_dir = %s", filepath.Join(dir, "run"))
	p("state_dir = %s", filepath.Join(dir, "state"))
	// Distinct per server so that process titles tell servers apart.
	p("instance_name = mailwave-%d", s.Port)
	p("log_path = %s", s.LogFile)
	p("protocols = imap")
	p("listen = %s", s.Host)
	p("shutdown_clients = yes")

	p("default_internal_user = %s", ids.internalUser)
	p("default_login_user = %s", ids.loginUser)
	if ids.internalGroup != "" {
		p("default_internal_group = %s", ids.internalGroup)
	}
	p("first_valid_uid = %d", ids.firstValidUID)
	p("first_valid_gid = %d", ids.firstValidG)
	p("mail_uid = %d", ids.mailUID)
	p("mail_gid = %d", ids.mailGID)
	// The default 256M could be too tight for the large messages the
	// benchmark appends.
	p("default_vsz_limit = 1G")

	p("ssl = yes")
	p("ssl_cert = <%s", filepath.Join(dir, serverCertName+".pem"))
	p("ssl_key = <%s", filepath.Join(dir, serverCertName+"-key.pem"))
	p("disable_plaintext_auth = %s", yesNo(!o.Plaintext))

	mechs := "plain login"
	if len(o.OAuth2Tokens) > 0 || o.OAuth2TokenInfo != "" {
		mechs += " xoauth2 oauthbearer"
	}
	p("auth_mechanisms = %s", mechs)
	// Names are taken as given (the default %Lu would lower-case them).
	p("auth_username_format = %%u")
	// Tests check refused logins: don't make each one cost two seconds
	// (Dovecot still answers failures on a 0.5 s tick).
	p("auth_failure_delay = 0")
	p("auth_verbose = yes")
	if o.MasterUser != "" {
		p("auth_master_user_separator = *")
		// pass = yes: after the master's password, the user must still
		// exist in the next passdb.
		p("passdb {\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%%u %s\n  master = yes\n  pass = yes\n}",
			filepath.Join(dir, "masters"))
	}
	if len(o.OAuth2Tokens) > 0 {
		// The OAuth2 mechanisms check the bearer token as the password
		// against an ordinary passdb; limited to those mechanisms so a
		// token is no LOGIN password (and a password no token).
		p("passdb {\n  driver = passwd-file\n  args = scheme=PLAIN %s\n  mechanisms = xoauth2 oauthbearer\n}",
			filepath.Join(dir, "tokens"))
	}
	if o.OAuth2TokenInfo != "" {
		// Tokens checked by asking whoever issued them (prepare writes
		// the oauth2 passdb's settings).
		p("passdb {\n  driver = oauth2\n  args = %s\n  mechanisms = xoauth2 oauthbearer\n}", filepath.Join(dir, oauth2Conf))
	}
	users := filepath.Join(dir, "users")
	p("passdb {\n  driver = passwd-file\n  args = scheme=PLAIN %s\n  mechanisms = plain login\n}", users)
	p("userdb {\n  driver = passwd-file\n  args = %s\n}", users)

	// LAYOUT=fs nests folders as directories, so '.' is an ordinary
	// character in names; UTF-8 keeps names on disk as the user sees them.
	// With Maildir, INBOX gets a directory of its own rather than the root,
	// which then holds only folders.
	mail := filepath.Join(s.MailRoot, "%u")
	if o.Storage == Maildir {
		p("mail_location = maildir:%s:LAYOUT=fs:UTF-8:INBOX=%s", mail, filepath.Join(mail, "INBOX"))
		p("maildir_copy_with_hardlinks = yes")
	} else {
		p("mail_location = sdbox:%s:LAYOUT=fs:UTF-8", mail)
	}
	// Without the mailbox list index. With it, Dovecot 2.3.19 sometimes
	// panics when sessions of one user race to create a mailbox (INBOX
	// on first APPEND, typically): two processes take the list index's and
	// the mailbox's locks in opposite orders, fcntl says EDEADLK, and the
	// imap process aborts (seen in about 1 in 30 fresh servers with four
	// connections appending at once; none in 250 without it).
	p("mailbox_list_index = no")
	// Throwaway data: never wait for the disk.
	p("mail_fsync = never")

	p("namespace inbox {")
	p("  inbox = yes")
	p("  separator = /")
	p("  prefix =")
	special := maps.Clone(DefaultSpecialUse)
	maps.Copy(special, o.SpecialUse)
	for _, name := range slices.Sorted(maps.Keys(special)) {
		// auto = no: they exist only once created, with the attribute.
		p("  mailbox %s {\n    auto = no\n    special_use = %s\n  }", quote(name), special[name])
	}
	p("}")

	if o.IMAPCapability != "" {
		p("imap_capability = %s", o.IMAPCapability)
	}
	p("protocol imap {")
	// The default 10 is too few for a copier's lanes plus the test's own
	// connections, all from 127.0.0.1.
	p("  mail_max_userip_connections = 1000")
	switch {
	case o.quotas():
		// imap_quota: the QUOTA extension, for a preflight's GETQUOTAROOT.
		p("  mail_plugins = $mail_plugins quota imap_quota")
	case o.MaxMessageBytes > 0:
		p("  mail_plugins = $mail_plugins quota")
	}
	p("}")
	if o.MaxMessageBytes > 0 || o.quotas() {
		// quota_max_mail_size needs a quota backend; "count" keeps no files
		// of its own (it requires quota_vsizes). No quota_rule but a
		// user's own (User.QuotaBytes): no limit on the total, only on
		// each message.
		p("plugin {\n  quota = count:User quota\n  quota_vsizes = yes")
		if o.MaxMessageBytes > 0 {
			p("  quota_max_mail_size = %d", o.MaxMessageBytes)
		}
		p("}")
	}

	p("service imap-login {")
	p("  inet_listener imap {\n    address = %s\n    port = %d\n  }", s.Host, s.Port)
	p("  inet_listener imaps {\n    address = %s\n    port = %d\n    ssl = yes\n  }", s.Host, s.TLSPort)
	// One long-lived login process for all connections ("high-performance
	// mode"), started with the server, rather than a fork per connection.
	p("  service_count = 0")
	p("  process_min_avail = 1")
	if !ids.root {
		// An unprivileged master cannot chroot.
		p("  chroot =")
	}
	p("}")
	// No socket for the auth penalty: otherwise every refused login (which
	// tests do on purpose) slows the next one from 127.0.0.1, up to 15 s.
	p("service anvil {")
	p("  unix_listener anvil-auth-penalty {\n    mode = 0\n  }")
	if !ids.root {
		p("  chroot =")
	}
	p("}")
	return b.String()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// quote makes a string a Dovecot configuration value.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// serverCertName names the server's certificate files (pki.CA.Issue).
const serverCertName = "dovecot-server"
