package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"mailwave/codec"
	"mailwave/internal/accesstoken"
	"mailwave/testkit"
)

func runCmd(ctx context.Context, args ...string) error {
	cmd := newRootCmd()
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	return cmd.ExecuteContext(ctx)
}

// The command refuses to start without what makes every decode a
// person's and recorded: the public key, the revocation list, the audit
// file; a malformed revocation list or a bad SameSite is refused too.
func TestRefusesToStartUnguarded(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(codec.KeysEnv, codec.TestKeys)
	t.Setenv(codec.AllowTestKeysEnv, "1")
	_, pub, err := accesstoken.WriteKeyPair(dir, must(accesstoken.NewKey()))
	require.NoError(t, err)
	bad := filepath.Join(dir, "bad-revoked")
	require.NoError(t, os.WriteFile(bad, []byte("alice yesterday\n"), 0o644))
	audit := filepath.Join(dir, "audit")
	ctx := context.Background()
	for want, args := range map[string][]string{
		"no --public-key":           {"--revocations", filepath.Join(dir, "revoked"), "--audit-file", audit},
		"no --revocations":          {"--public-key", pub, "--audit-file", audit},
		"no --audit-file":           {"--public-key", pub, "--revocations", filepath.Join(dir, "revoked")},
		"not RFC 3339":              {"--public-key", pub, "--revocations", bad, "--audit-file", audit},
		"want strict, lax or none":  {"--public-key", pub, "--revocations", filepath.Join(dir, "revoked"), "--audit-file", audit, "--cookie-samesite", "loose"},
		"--public-key: public key":  {"--public-key", audit + "-missing", "--revocations", filepath.Join(dir, "revoked"), "--audit-file", audit},
		"SameSite=None session coo": {"--public-key", pub, "--revocations", filepath.Join(dir, "revoked"), "--audit-file", audit, "--cookie-samesite", "none", "--listen", "127.0.0.1:0"},
	} {
		err := runCmd(ctx, args...)
		assert.ErrorContains(t, err, want)
	}
}

// Configured from the environment, as compose does, the server decodes
// for a person's decoder token and records it; SIGHUP reopens the audit
// file.
func TestServesFromTheEnvironment(t *testing.T) {
	dir := t.TempDir()
	key := must(accesstoken.NewKey())
	_, pub, err := accesstoken.WriteKeyPair(dir, key)
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	audit := filepath.Join(dir, "audit.jsonl")
	t.Setenv(codec.KeysEnv, codec.TestKeys)
	t.Setenv(codec.AllowTestKeysEnv, "1")
	t.Setenv("MAILWAVE_LISTEN", addr)
	t.Setenv("MAILWAVE_PUBLIC_KEY", pub)
	t.Setenv("MAILWAVE_REVOCATIONS", filepath.Join(dir, "revoked"))
	t.Setenv("MAILWAVE_AUDIT_FILE", audit)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runCmd(ctx) }()
	defer func() { cancel(); assert.NoError(t, <-done) }()

	dc := converter.WithDataConverterSerializationContext(codec.DataConverter(testkit.TestKeyRing()),
		converter.WorkflowSerializationContext{WorkflowID: "mailbox-k9"})
	p, err := dc.ToPayloads("zoe.quinn@trust.nhs.example")
	require.NoError(t, err)
	body, err := protojson.Marshal(p)
	require.NoError(t, err)
	now := time.Now()
	tok, err := accesstoken.Issue(key, accesstoken.Claims{Subject: "dana", Roles: []accesstoken.Role{accesstoken.Decoder},
		Namespace: "default", IssuedAt: now, Expires: now.Add(time.Hour)})
	require.NoError(t, err)
	var out string
	decode := func() bool {
		req, err := http.NewRequest(http.MethodPost, fmt.Sprintf("http://%s/decode", addr), bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		out = string(b)
		return resp.StatusCode == http.StatusOK
	}
	require.Eventually(t, decode, 10*time.Second, 50*time.Millisecond)
	assert.Contains(t, out, "payloads")
	rec, err := os.ReadFile(audit)
	require.NoError(t, err)
	assert.Contains(t, string(rec), `"subject":"dana"`)
	assert.Contains(t, string(rec), `"workflows":["mailbox-k9"]`)
	assert.False(t, strings.Contains(string(rec), "zoe"))
	st, err := os.Stat(audit)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	// Archived, then SIGHUP: the next record goes to a new file.
	require.NoError(t, os.Rename(audit, audit+".1"))
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	require.Eventually(t, func() bool {
		_, err := os.Stat(audit)
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "the audit file was not reopened")
	require.True(t, decode())
	rec, err = os.ReadFile(audit)
	require.NoError(t, err)
	assert.Equal(t, 1, strings.Count(string(rec), "\n"))
	assert.Contains(t, string(rec), `"subject":"dana"`)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
