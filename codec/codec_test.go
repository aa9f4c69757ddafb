package codec_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"

	"mailwave/codec"
)

func key(b byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)) }

func ring(t *testing.T, spec string) *codec.KeyRing {
	t.Helper()
	r, err := codec.ParseKeys(spec)
	require.NoError(t, err)
	return r
}

type mailbox struct {
	Address, DisplayName string
	Folders              []string
}

var alice = mailbox{Address: "alice.smith@trust.nhs.example", DisplayName: "Alice Smith",
	Folders: []string{"INBOX", "Patients/Mr Jones referral"}}

// A value goes through the converter sealed, and comes back whole; the
// payload holds none of its text, small or large (compressed).
func TestRoundTripHidesTheValue(t *testing.T) {
	dc := codec.DataConverter(ring(t, "k1="+key(1)))
	big := alice
	big.Folders = append(big.Folders, strings.Repeat("Inbox/Clinic letters ", 2000))
	for _, v := range []mailbox{alice, big} {
		p, err := dc.ToPayload(v)
		require.NoError(t, err)
		assert.Equal(t, codec.EncodingEncrypted, string(p.Metadata[codec.MetadataEncoding]))
		assert.Equal(t, "k1", string(p.Metadata[codec.MetadataKeyID]))
		for _, s := range []string{"alice", "Alice Smith", "Jones", "Clinic"} {
			assert.NotContains(t, string(p.Data), s)
		}
		var got mailbox
		require.NoError(t, dc.FromPayload(p, &got))
		assert.Equal(t, v, got)
	}
	// The large one was compressed before sealing.
	p, err := dc.ToPayload(big)
	require.NoError(t, err)
	assert.Equal(t, "deflate", string(p.Metadata[codec.MetadataCompression]))
	assert.Less(t, len(p.Data), len(big.Folders[2])/4)
}

// Rotation: a ring whose current key is new still opens what the old key
// sealed, and seals with the new one; a ring without the old key says which
// key it lacks.
func TestKeyRotation(t *testing.T) {
	old := codec.New(ring(t, "k1="+key(1)))
	sealed, err := old.Encode([]*commonpb.Payload{{Data: []byte("alice.smith@trust.nhs.example")}})
	require.NoError(t, err)

	rotated := codec.New(ring(t, "k2="+key(2)+",k1="+key(1)))
	opened, err := rotated.Decode(sealed)
	require.NoError(t, err)
	assert.Equal(t, "alice.smith@trust.nhs.example", string(opened[0].Data))
	resealed, err := rotated.Encode(opened)
	require.NoError(t, err)
	assert.Equal(t, "k2", string(resealed[0].Metadata[codec.MetadataKeyID]))

	_, err = codec.New(ring(t, "k2="+key(2))).Decode(sealed)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `key "k1", which is not in this key ring`)
}

// A payload that is not encrypted (a client without the key) is refused by
// the codec every worker and client carries, alone or among sealed ones;
// a codec accepting plain payloads (the replay of histories recorded before
// encryption, the codec server) reads it as it is.
func TestUnencryptedPayloads(t *testing.T) {
	plain, err := converter.GetDefaultDataConverter().ToPayload(alice)
	require.NoError(t, err)
	strict := codec.New(ring(t, "k1="+key(1)))
	sealed, err := strict.Encode([]*commonpb.Payload{{Data: []byte("x")}})
	require.NoError(t, err)
	for _, in := range [][]*commonpb.Payload{{plain}, {sealed[0], plain}} {
		_, err = strict.Decode(in)
		require.ErrorIs(t, err, codec.ErrNotEncrypted)
		assert.ErrorContains(t, err, "payload not encrypted: started without mailwave's key")
		assert.NotContains(t, err.Error(), "alice")
	}
	var got mailbox
	err = codec.DataConverter(ring(t, "k1="+key(1))).FromPayload(plain, &got)
	assert.ErrorIs(t, err, codec.ErrNotEncrypted, "the data converter is strict too")

	out, err := strict.AcceptingPlain().Decode([]*commonpb.Payload{plain})
	require.NoError(t, err)
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(out[0], &got))
	assert.Equal(t, alice, got)
}

// In a workflow's or an activity's serialization context, what is sealed
// carries the workflow's ID, bound to the ciphertext: it cannot be changed
// or dropped without the payload failing to open. Payloads sealed outside
// one carry none and open as before.
func TestWorkflowIDIsStampedAndBound(t *testing.T) {
	dc := codec.DataConverter(ring(t, "k1="+key(1)))
	for sc, want := range map[converter.SerializationContext]string{
		converter.WorkflowSerializationContext{Namespace: "default", WorkflowID: "mailbox-k1"}:             "mailbox-k1",
		converter.ActivitySerializationContext{WorkflowID: "wave-w1", ActivityType: "Copy"}:                "wave-w1",
		converter.ActivitySerializationContext{ActivityType: "standalone"}:                                 "",
		converter.NexusSerializationContext{Endpoint: "e", Service: "s", Operation: "o"}:                   "",
		converter.WorkflowSerializationContext{Namespace: "default", WorkflowID: strings.Repeat("x", 300)}: strings.Repeat("x", 300),
	} {
		p, err := converter.WithDataConverterSerializationContext(dc, sc).ToPayload(alice)
		require.NoError(t, err)
		assert.Equal(t, want, codec.WorkflowIDOf(p))
		_, stamped := p.Metadata[codec.MetadataWorkflowID]
		assert.Equal(t, want != "", stamped)
		var got mailbox
		require.NoError(t, dc.FromPayload(p, &got), "any context opens it")
		assert.Equal(t, alice, got)
	}

	p, err := converter.WithDataConverterSerializationContext(dc, converter.WorkflowSerializationContext{WorkflowID: "mailbox-k1"}).ToPayload(alice)
	require.NoError(t, err)
	var got mailbox
	relabelled := &commonpb.Payload{Metadata: maps.Clone(p.Metadata), Data: p.Data}
	relabelled.Metadata[codec.MetadataWorkflowID] = []byte("mailbox-k2")
	assert.ErrorContains(t, dc.FromPayload(relabelled, &got), "does not open")
	delete(relabelled.Metadata, codec.MetadataWorkflowID)
	assert.ErrorContains(t, dc.FromPayload(relabelled, &got), "does not open")

	unstamped, err := dc.ToPayload(alice)
	require.NoError(t, err)
	unstamped.Metadata[codec.MetadataWorkflowID] = []byte("mailbox-k1")
	assert.ErrorContains(t, dc.FromPayload(unstamped, &got), "does not open", "a label cannot be added either")

	// Failures are stamped too.
	fc := codec.FailureConverter(dc)
	f := converter.WithFailureConverterSerializationContext(fc, converter.WorkflowSerializationContext{WorkflowID: "mailbox-k1"}).
		ErrorToFailure(errors.New("folder Patients/Mr Jones"))
	assert.Equal(t, "mailbox-k1", codec.WorkflowIDOf(f.GetEncodedAttributes()))
	assert.NotContains(t, f.String(), "Jones")
	assert.ErrorContains(t, fc.FailureToError(f), "Mr Jones")
}

// A payload whose metadata or ciphertext was altered does not open, and a
// key of the same ID but other material is refused.
func TestTamperingIsRefused(t *testing.T) {
	c := codec.New(ring(t, "k1="+key(1)))
	sealed, err := c.Encode([]*commonpb.Payload{{Data: bytes.Repeat([]byte("alice "), 100)}})
	require.NoError(t, err)

	dropped := &commonpb.Payload{Metadata: map[string][]byte{}, Data: sealed[0].Data}
	for k, v := range sealed[0].Metadata {
		if k != codec.MetadataCompression {
			dropped.Metadata[k] = v
		}
	}
	_, err = c.Decode([]*commonpb.Payload{dropped})
	assert.ErrorContains(t, err, "does not open")

	flipped := &commonpb.Payload{Metadata: sealed[0].Metadata, Data: bytes.Clone(sealed[0].Data)}
	flipped.Data[len(flipped.Data)-1] ^= 1
	_, err = c.Decode([]*commonpb.Payload{flipped})
	assert.ErrorContains(t, err, "does not open")

	_, err = codec.New(ring(t, "k1="+key(9))).Decode(sealed)
	assert.ErrorContains(t, err, "does not open")
}

// Bad key rings are refused with the problem named, never the key.
func TestKeyRingErrors(t *testing.T) {
	for spec, want := range map[string]string{
		"":                  "empty",
		"k1":                "want ID=BASE64",
		"k1=!!!":            "not base64",
		"k1=" + key(1)[:20]: "want 32",
		"k1=" + base64.StdEncoding.EncodeToString([]byte("short")): "want 32",
		"k1=" + key(1) + ",k1=" + key(2):                           "given twice",
		"bad id=" + key(1):                                         "want ID=BASE64",
		"../x=" + key(1):                                           "letters, digits",
	} {
		_, err := codec.ParseKeys(spec)
		if assert.Error(t, err, spec) {
			assert.Contains(t, err.Error(), want, spec)
			assert.NotContains(t, err.Error(), key(1), spec)
			assert.NotContains(t, err.Error(), "AQEBAQEB", spec)
		}
	}
}

// A key file must be private; comments and one key a line are read.
func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	require.NoError(t, os.WriteFile(path, []byte("# rotated 2026-11\nk2="+key(2)+"\nk1="+key(1)+"\n"), 0o644))
	_, err := codec.LoadKeyFile(path)
	assert.ErrorContains(t, err, "group and others must have no access")

	require.NoError(t, os.Chmod(path, 0o600))
	r, err := codec.LoadKeyFile(path)
	require.NoError(t, err)
	assert.Equal(t, "k2", r.Current())
	assert.Equal(t, []string{"k1", "k2"}, r.IDs())

	t.Setenv(codec.KeysEnv, "")
	_, err = codec.FromEnvOrFile("")
	assert.ErrorIs(t, err, codec.ErrNoKeys)
	t.Setenv(codec.KeysEnv, "k3="+key(3))
	r, err = codec.FromEnvOrFile("")
	require.NoError(t, err)
	assert.Equal(t, "k3", r.Current())
}

// The test key ring is published in mailwave's source: a process loading
// its key ring refuses one that holds that key, under whatever ID and
// wherever it is in the ring, unless the tests allow it.
func TestThePublishedTestKeyIsRefused(t *testing.T) {
	_, testKey, _ := strings.Cut(codec.TestKeys, "=")
	t.Setenv(codec.AllowTestKeysEnv, "")
	for id, spec := range map[string]string{"test-1": codec.TestKeys, "mine": "mine=" + testKey, "old": "k1=" + key(1) + "\nold=" + testKey} {
		t.Setenv(codec.KeysEnv, spec)
		_, err := codec.FromEnvOrFile("")
		require.ErrorIs(t, err, codec.ErrTestKey, spec)
		assert.ErrorContains(t, err, "$"+codec.KeysEnv, "names where the ring came from")
		assert.ErrorContains(t, err, "key "+id+":", "and which key")
		assert.NotContains(t, err.Error(), testKey)

		path := filepath.Join(t.TempDir(), "keys")
		require.NoError(t, os.WriteFile(path, []byte(spec), 0o600))
		_, err = codec.LoadKeyFile(path)
		require.ErrorIs(t, err, codec.ErrTestKey, spec)
		assert.ErrorContains(t, err, path)
	}
	t.Setenv(codec.KeysEnv, "k1="+key(1))
	_, err := codec.FromEnvOrFile("")
	require.NoError(t, err, "any other key is taken")

	t.Setenv(codec.AllowTestKeysEnv, "1")
	t.Setenv(codec.KeysEnv, codec.TestKeys)
	r, err := codec.FromEnvOrFile("")
	require.NoError(t, err, "the tests' child processes")
	assert.Equal(t, "test-1", r.Current())
}

// Compression bombs: what one Decode call may inflate to is bounded in
// all, not only per payload.
func TestDecodeIsBoundedInAll(t *testing.T) {
	c := codec.New(ring(t, "k1="+key(1)))
	one, err := c.Encode([]*commonpb.Payload{{Data: make([]byte, 50<<20)}})
	require.NoError(t, err)
	assert.Less(t, len(one[0].Data), 1<<20, "zeros compress")
	_, err = c.Decode([]*commonpb.Payload{one[0], one[0]})
	require.NoError(t, err)
	_, err = c.Decode([]*commonpb.Payload{one[0], one[0], one[0]})
	assert.ErrorContains(t, err, "decode to more than")
}
