package fakegraph

import "encoding/pem"

// CAPEM is the PEM of the certificate the server presents, for a client
// in another process (a worker's graph ca_file, a test's child): it is
// httptest's own, the same for every TLS server httptest starts, so it
// also trusts a test's proxy in front of the fake.
func (s *Server) CAPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
}
