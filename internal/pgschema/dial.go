package pgschema

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"mailwave/internal/secretfile"
)

// The rules every connection to mailwave's database keeps, checked before
// anything is dialled:
//   - no password in the URL (nor PGPASSWORD): a URL is seen on command
//     lines (ps), in environments (/proc, docker inspect) and in shell
//     history. The password comes from a password file in libpq's pgpass
//     format, named by the URL's passfile= or by PGPASSFILE (else
//     ~/.pgpass), which group and others may not read;
//   - TLS with the server's certificate and name verified
//     (sslmode=verify-full, sslrootcert= a CA file) to any host that is
//     not loopback or a Unix socket.

// Redact is url with its password, if any, replaced by "xxxxx": what logs
// and errors show of a connection URL.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(a connection URL that does not parse)"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// Parse checks a store's URL against the rules above and returns its pool
// configuration; what names the store in errors ("roster store").
func Parse(raw, what string) (*pgxpool.Config, error) {
	return parse(raw, what, false)
}

// parse is Parse; withPassword lets the URL carry a password (an
// administrator's URL read from a secret file).
func parse(raw, what string, withPassword bool) (*pgxpool.Config, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("%s: want a postgres:// URL", what)
	}
	q := u.Query()
	if !withPassword {
		if _, set := u.User.Password(); set || q.Has("password") {
			return nil, fmt.Errorf("%s: the URL %s carries a password, which would be seen on command lines and in environments: "+
				"remove it and put it in a password file (a pgpass line host:port:database:user:password, mode 0600) named by the URL's passfile= or PGPASSFILE",
				what, Redact(raw))
		}
		if os.Getenv("PGPASSWORD") != "" {
			return nil, fmt.Errorf("%s: PGPASSWORD is set: a password in the environment is refused; unset it and use a password file (passfile= or PGPASSFILE)", what)
		}
	}
	if err := checkPassfile(q.Get("passfile"), what); err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err) // pgx's text redacts the password
	}
	cc := cfg.ConnConfig
	hosts := []*pgconn.FallbackConfig{{Host: cc.Host, Port: cc.Port, TLSConfig: cc.TLSConfig}}
	for _, h := range append(hosts, cc.Fallbacks...) {
		if local(h.Host) {
			continue
		}
		// sslmode=verify-full is the one mode that verifies the server's
		// name as well as its certificate (verify-ca and require skip
		// Go's verification; prefer and allow fall back to plain text).
		if h.TLSConfig == nil || h.TLSConfig.InsecureSkipVerify {
			return nil, fmt.Errorf("%s: host %s is not on loopback, and the URL does not verify the server (sslmode=%s): %s",
				what, h.Host, sslmode(q), tlsFix)
		}
		if q.Get("sslrootcert") == "" && os.Getenv("PGSSLROOTCERT") == "" {
			return nil, fmt.Errorf("%s: host %s is not on loopback, and the URL names no CA file: %s", what, h.Host, tlsFix)
		}
	}
	return cfg, nil
}

const tlsFix = "a connection beyond this machine must be TLS with the server verified; add sslmode=verify-full&sslrootcert=/path/to/ca.pem (the CA that signed the server's certificate) to the URL"

func sslmode(q url.Values) string {
	if m := q.Get("sslmode"); m != "" {
		return m
	}
	if m := os.Getenv("PGSSLMODE"); m != "" {
		return m
	}
	return "prefer, the default"
}

// local reports whether host is a Unix socket's directory or a loopback
// name or address.
func local(host string) bool {
	if strings.HasPrefix(host, "/") || host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkPassfile refuses a password file that group or others may read, or
// one named that is not there. name is the URL's passfile=; else
// PGPASSFILE; else ~/.pgpass, if it exists.
func checkPassfile(name, what string) error {
	explicit := true
	if name == "" {
		name = os.Getenv("PGPASSFILE")
	}
	if name == "" {
		explicit = false
		home, err := os.UserHomeDir()
		if err != nil {
			return nil
		}
		name = filepath.Join(home, ".pgpass")
	}
	if _, err := os.Stat(name); errors.Is(err, os.ErrNotExist) && !explicit {
		return nil
	}
	if err := secretfile.Check(name); err != nil {
		return fmt.Errorf("%s: password file: %w", what, err)
	}
	return nil
}
