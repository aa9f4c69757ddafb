package connect_test

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"mailwave/codec"
	"mailwave/internal/connect"
	"mailwave/testkit"
	"mailwave/testkit/pki"
)

// frontend is a fake Temporal frontend behind TLS that demands a client
// certificate, and records who called and with which bearer token.
type frontend struct {
	workflowservice.UnimplementedWorkflowServiceServer
	mu      sync.Mutex
	auth    []string
	clients []string
}

func (f *frontend) GetSystemInfo(ctx context.Context, _ *workflowservice.GetSystemInfoRequest) (*workflowservice.GetSystemInfoResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auth = append(f.auth, md.Get("authorization")...)
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
			f.clients = append(f.clients, ti.State.PeerCertificates[0].Subject.CommonName)
		}
	}
	return &workflowservice.GetSystemInfoResponse{Capabilities: &workflowservice.GetSystemInfoResponse_Capabilities{}}, nil
}

func startFrontend(t *testing.T, ca *pki.CA) (*frontend, string) {
	t.Helper()
	srvCert := ca.Server(t, "temporal-frontend")
	creds := credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{srvCert.TLS},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool(),
		MinVersion:   tls.VersionTLS12,
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := grpc.NewServer(grpc.Creds(creds))
	f := &frontend{}
	workflowservice.RegisterWorkflowServiceServer(s, f)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return f, lis.Addr().String()
}

// The connection builder speaks mTLS with the given CA, client certificate
// and server name, and sends the API key as a bearer token; without the
// client certificate, or trusting another CA, the server is not reached.
func TestTLSAndAPIKey(t *testing.T) {
	ca := pki.NewCA(t, "frontend CA")
	f, addr := startFrontend(t, ca)
	client := ca.Client(t, "mailwave-worker-1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := connect.Options{Address: addr, Keys: testkit.TestKeyRing(), DialTimeout: 3 * time.Second}

	ok := base
	ok.TLSCA, ok.TLSCert, ok.TLSKey, ok.TLSServerName, ok.APIKey = ca.CertFile, client.CertFile, client.KeyFile, "temporal-frontend", "key-abc"
	c, err := ok.Dial(ctx, nil)
	require.NoError(t, err)
	c.Close()
	f.mu.Lock()
	assert.Contains(t, f.auth, "Bearer key-abc")
	assert.Contains(t, f.clients, "mailwave-worker-1")
	f.mu.Unlock()

	noCert := ok
	noCert.TLSCert, noCert.TLSKey = "", ""
	_, err = noCert.Dial(ctx, nil)
	assert.ErrorIs(t, err, connect.ErrUnreachable, "a frontend that demands a client certificate")

	otherCA := ok
	otherCA.TLSCA = pki.NewCA(t, "someone else").CertFile
	_, err = otherCA.Dial(ctx, nil)
	assert.ErrorIs(t, err, connect.ErrUnreachable, "a server certificate from an untrusted CA")

	wrongName := ok
	wrongName.TLSServerName = "not-the-frontend"
	_, err = wrongName.Dial(ctx, nil)
	assert.ErrorIs(t, err, connect.ErrUnreachable, "a server certificate for another name")

	plain := base
	_, err = plain.Dial(ctx, nil)
	assert.ErrorIs(t, err, connect.ErrUnreachable, "plain gRPC to a TLS frontend")
}

// The API key from a file (mode-checked) is sent as a bearer token, and a
// renewed key is taken up by a running client without a restart.
func TestAPIKeyFile(t *testing.T) {
	ca := pki.NewCA(t, "frontend CA")
	f, addr := startFrontend(t, ca)
	cl := ca.Client(t, "mailwave-worker-1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	keyFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(keyFile, []byte("token-one\n"), 0o600))
	o := connect.Options{Address: addr, Keys: testkit.TestKeyRing(), DialTimeout: 3 * time.Second,
		TLSCA: ca.CertFile, TLSCert: cl.CertFile, TLSKey: cl.KeyFile, TLSServerName: "temporal-frontend", APIKeyFile: keyFile}
	c, err := o.Dial(ctx, nil)
	require.NoError(t, err)
	defer c.Close()

	require.NoError(t, os.WriteFile(keyFile+".new", []byte("token-two"), 0o600))
	require.NoError(t, os.Rename(keyFile+".new", keyFile))
	time.Sleep(1100 * time.Millisecond)
	_, err = c.WorkflowService().GetSystemInfo(ctx, &workflowservice.GetSystemInfoRequest{})
	require.NoError(t, err)
	f.mu.Lock()
	assert.Equal(t, "Bearer token-one", f.auth[0])
	assert.Equal(t, "Bearer token-two", f.auth[len(f.auth)-1])
	f.mu.Unlock()
}

// A key file others may read, an empty one, one of two lines, a missing
// one, and a key both in a file and on the command line are refused before
// any connection. (A key file implies TLS, as a key does.)
func TestBadAPIKeyFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), mode))
		require.NoError(t, os.Chmod(p, mode))
		return p
	}
	base := connect.Options{Address: "127.0.0.1:1", Keys: testkit.TestKeyRing(), TLS: true}
	for name, tc := range map[string]struct {
		mod  func(*connect.Options)
		want string
	}{
		"readable by others": {func(o *connect.Options) { o.APIKeyFile = write("open", "k", 0o644) }, "group and others must have no access"},
		"empty":              {func(o *connect.Options) { o.APIKeyFile = write("empty", "\n", 0o600) }, "is empty"},
		"two lines":          {func(o *connect.Options) { o.APIKeyFile = write("two", "a\nb\n", 0o600) }, "one key"},
		"missing":            {func(o *connect.Options) { o.APIKeyFile = filepath.Join(dir, "nope") }, "--api-key-file"},
		"both":               {func(o *connect.Options) { o.APIKeyFile, o.APIKey = write("k", "k", 0o600), "k" }, "give one"},
	} {
		o := base
		tc.mod(&o)
		_, err := o.ClientOptions(nil)
		assert.ErrorContains(t, err, tc.want, name)
	}
}

// Settings that cannot work are refused before any connection.
func TestBadSettingsAreRefused(t *testing.T) {
	ca := pki.NewCA(t, "ca")
	client := ca.Client(t, "c")
	base := connect.Options{Address: "127.0.0.1:1", Keys: testkit.TestKeyRing()}

	o := base
	o.TLSCert = client.CertFile
	_, err := o.ClientOptions(nil)
	assert.ErrorContains(t, err, "--tls-cert and --tls-key go together")

	o = base
	o.TLSCert, o.TLSKey = client.CertFile, client.KeyFile
	require.NoError(t, os.Chmod(client.KeyFile, 0o644))
	_, err = o.ClientOptions(nil)
	assert.ErrorContains(t, err, "group and others must have no access")

	o = base
	o.TLSCA = client.KeyFile + ".missing"
	_, err = o.ClientOptions(nil)
	assert.ErrorContains(t, err, "--tls-ca")

	// No key ring, and none in the environment: no client at all.
	t.Setenv(codec.KeysEnv, "")
	o = connect.Options{Address: "127.0.0.1:1"}
	_, err = o.ClientOptions(nil)
	assert.ErrorIs(t, err, codec.ErrNoKeys)
}

// Every client carries the codec: what it writes is sealed.
func TestClientsEncryptPayloads(t *testing.T) {
	opts, err := connect.Options{Keys: testkit.TestKeyRing()}.ClientOptions(nil)
	require.NoError(t, err)
	require.NotNil(t, opts.DataConverter)
	p, err := opts.DataConverter.ToPayload("alice.smith@trust.nhs.example")
	require.NoError(t, err)
	assert.Equal(t, codec.EncodingEncrypted, string(p.Metadata[codec.MetadataEncoding]))
	assert.NotContains(t, string(p.Data), "alice")
	require.NotNil(t, opts.FailureConverter)
	assert.NotEmpty(t, opts.Identity)
	assert.Len(t, opts.Interceptors, 1, "the interceptor that drops signals without the key")

	// Strict: a plain payload is refused, unless --accept-plain-payloads.
	plain, err := converter.GetDefaultDataConverter().ToPayload("x")
	require.NoError(t, err)
	var s string
	assert.ErrorIs(t, opts.DataConverter.FromPayload(plain, &s), codec.ErrNotEncrypted)
	lenient, err := connect.Options{Keys: testkit.TestKeyRing(), AcceptPlainPayloads: true}.ClientOptions(nil)
	require.NoError(t, err)
	require.NoError(t, lenient.DataConverter.FromPayload(plain, &s))
	assert.Equal(t, "x", s)
}

// The worker's metrics handler reaches the client's options, so the SDK's
// own metrics go to the worker's registry.
func TestClientOptionsCarryTheMetricsHandler(t *testing.T) {
	h := client.MetricsNopHandler.WithTags(map[string]string{"worker": "w1"})
	opts, err := connect.Options{Keys: testkit.TestKeyRing(), Metrics: h}.ClientOptions(nil)
	require.NoError(t, err)
	assert.Equal(t, h, opts.MetricsHandler)
	opts, err = connect.Options{Keys: testkit.TestKeyRing()}.ClientOptions(nil)
	require.NoError(t, err)
	assert.Nil(t, opts.MetricsHandler, "none: the SDK's no-op")
}
