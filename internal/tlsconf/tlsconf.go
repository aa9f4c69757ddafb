// Package tlsconf loads TLS material from files, once for every part of
// mailwave that needs it (IMAP, SMTP).
package tlsconf

import (
	"crypto/x509"
	"fmt"
	"os"
)

// CertPool is the system's CA pool with the PEM certificates of caFile
// added; with caFile empty, the system's pool alone. A machine without a
// system pool (some minimal containers) trusts caFile only.
func CertPool(caFile string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if caFile == "" {
		return pool, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificates", caFile)
	}
	return pool, nil
}
