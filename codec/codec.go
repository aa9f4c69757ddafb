package codec

import (
	"bytes"
	"compress/flate"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"
)

// Metadata of an encrypted payload.
const (
	// MetadataEncoding is the encoding of a payload this codec sealed.
	MetadataEncoding = converter.MetadataEncoding
	// EncodingEncrypted marks a sealed payload.
	EncodingEncrypted = "binary/encrypted"
	// MetadataKeyID names the key that sealed it.
	MetadataKeyID = "encryption-key-id"
	// MetadataCompression says the plaintext was compressed before sealing.
	MetadataCompression = "mailwave-compression"
	compressionDeflate  = "deflate"
	// MetadataWorkflowID names the workflow a payload was sealed for (the
	// SDK's serialization context), in plain text beside the ciphertext and
	// bound to it: the codec server records it when someone decodes the
	// payload. Workflow IDs hold only opaque keys (docs/privacy.md), so it
	// adds nothing that history does not already show.
	MetadataWorkflowID = "mailwave-workflow-id"
)

// ErrNotEncrypted refuses a payload that is not sealed: a strict codec (every
// worker and client's, unless told to accept plain payloads) never reads one,
// so a workflow started by a client without the key fails at once.
var ErrNotEncrypted = errors.New("payload not encrypted: started without mailwave's key (or sent by a client without it), and mailwave's workers refuse plain payloads")

// compressAbove is the plaintext size from which compression is tried:
// below it the saving is too small to pay for itself.
const compressAbove = 256

// maxPlaintext bounds what a decoded (and decompressed) payload may grow
// to, and maxDecoded what one Decode call may produce in all: Temporal
// refuses payloads over 2 MB, so anything far larger is not one of ours
// (and a codec server request of many small bombs is stopped too).
const (
	maxPlaintext = 64 << 20
	maxDecoded   = 128 << 20
)

// Codec is a converter.PayloadCodec that seals payloads with the key ring's
// current key and opens them with whichever key sealed them. It is strict:
// a payload that is not sealed is refused (ErrNotEncrypted), unless the
// codec was made with AcceptingPlain.
type Codec struct {
	keys        *KeyRing
	acceptPlain bool
	// workflowID, from the serialization context, is stamped on what Encode
	// seals.
	workflowID string
}

var (
	_ converter.PayloadCodec                         = (*Codec)(nil)
	_ converter.PayloadCodecWithSerializationContext = (*Codec)(nil)
)

// New returns the strict codec over a key ring.
func New(keys *KeyRing) *Codec { return &Codec{keys: keys} }

// AcceptingPlain is a copy of the codec that passes a payload that is not
// sealed through as it is: for replaying histories recorded before
// encryption, for a worker that still runs such workflows
// (--accept-plain-payloads), and for the codec server (which shows what the
// UI would show anyway).
func (c *Codec) AcceptingPlain() *Codec {
	cp := *c
	cp.acceptPlain = true
	return &cp
}

// WithSerializationContext is the codec for a workflow's or an activity's
// payloads: what it seals carries the workflow's ID (MetadataWorkflowID).
func (c *Codec) WithSerializationContext(sc converter.SerializationContext) converter.PayloadCodec {
	id := ""
	switch sc := sc.(type) {
	case converter.WorkflowSerializationContext:
		id = sc.WorkflowID
	case converter.ActivitySerializationContext:
		id = sc.WorkflowID
	}
	if id == "" || id == c.workflowID {
		return c
	}
	cp := *c
	cp.workflowID = id
	return &cp
}

// Encode seals each payload (the whole payload, metadata included, so the
// original encoding is hidden too).
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("codec: %w", err)
		}
		meta := map[string][]byte{
			MetadataEncoding: []byte(EncodingEncrypted),
			MetadataKeyID:    []byte(c.keys.current),
		}
		if c.workflowID != "" {
			meta[MetadataWorkflowID] = []byte(c.workflowID)
		}
		if len(plain) >= compressAbove {
			if z, ok := deflate(plain); ok {
				plain = z
				meta[MetadataCompression] = []byte(compressionDeflate)
			}
		}
		aead := c.keys.aeads[c.keys.current]
		nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
		if _, err := rand.Read(nonce); err != nil {
			return nil, fmt.Errorf("codec: %w", err)
		}
		sealed := aead.Seal(nonce, nonce, plain, additionalData(meta))
		out[i] = &commonpb.Payload{Metadata: meta, Data: sealed}
	}
	return out, nil
}

// Decode opens each sealed payload. One that is not sealed (written before
// encryption was on, or by a client without the key) is refused, or, by a
// codec AcceptingPlain, returned as it is.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	total := 0
	for i, p := range payloads {
		if !Sealed(p) {
			if !c.acceptPlain {
				return nil, fmt.Errorf("codec: %w", ErrNotEncrypted)
			}
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[MetadataKeyID])
		aead, ok := c.keys.aeads[id]
		if !ok {
			return nil, fmt.Errorf("codec: the payload was encrypted with key %q, which is not in this key ring (it has %v): add that key to decrypt it", id, c.keys.IDs())
		}
		data := p.GetData()
		if len(data) < aead.NonceSize()+aead.Overhead() {
			return nil, fmt.Errorf("codec: a payload encrypted with key %q is too short (%d bytes)", id, len(data))
		}
		meta := map[string][]byte{MetadataEncoding: []byte(EncodingEncrypted), MetadataKeyID: []byte(id)}
		if z, ok := p.GetMetadata()[MetadataCompression]; ok {
			meta[MetadataCompression] = z
		}
		if w, ok := p.GetMetadata()[MetadataWorkflowID]; ok {
			meta[MetadataWorkflowID] = w
		}
		plain, err := aead.Open(nil, data[:aead.NonceSize()], data[aead.NonceSize():], additionalData(meta))
		if err != nil {
			return nil, fmt.Errorf("codec: a payload encrypted with key %q does not open (wrong key material, or altered): %w", id, err)
		}
		switch z := string(meta[MetadataCompression]); z {
		case "":
		case compressionDeflate:
			if plain, err = inflate(plain); err != nil {
				return nil, fmt.Errorf("codec: %w", err)
			}
		default:
			return nil, fmt.Errorf("codec: unknown compression %q", z)
		}
		if total += len(plain); total > maxDecoded {
			return nil, fmt.Errorf("codec: the payloads decode to more than %d bytes", maxDecoded)
		}
		var orig commonpb.Payload
		if err := proto.Unmarshal(plain, &orig); err != nil {
			return nil, fmt.Errorf("codec: a decrypted payload does not parse: %w", err)
		}
		out[i] = &orig
	}
	return out, nil
}

// Sealed reports whether a payload is one this codec sealed (by its
// metadata; whether it opens is another matter).
func Sealed(p *commonpb.Payload) bool {
	return string(p.GetMetadata()[MetadataEncoding]) == EncodingEncrypted
}

// WorkflowIDOf is the workflow a sealed payload was sealed for, empty when
// it carries none (sealed outside a workflow's context, or before payloads
// were stamped). A payload that opens has it as it was sealed: it is bound
// to the ciphertext.
func WorkflowIDOf(p *commonpb.Payload) string {
	return string(p.GetMetadata()[MetadataWorkflowID])
}

// additionalData binds the metadata that says how to open a payload, and the
// workflow it was sealed for, to its ciphertext, so it cannot be changed
// (another key ID, compression dropped, another workflow's ID, the ID
// dropped) without the payload failing to open. The workflow ID is bound
// only when the payload carries one, length-prefixed, so payloads sealed
// before it was stamped open as they did.
func additionalData(meta map[string][]byte) []byte {
	var b bytes.Buffer
	for _, k := range []string{MetadataEncoding, MetadataKeyID, MetadataCompression} {
		b.WriteString(k)
		b.WriteByte(0)
		b.Write(meta[k])
		b.WriteByte(0)
	}
	if id, ok := meta[MetadataWorkflowID]; ok {
		b.WriteString(MetadataWorkflowID)
		b.WriteByte(0)
		b.Write(binary.AppendUvarint(nil, uint64(len(id))))
		b.Write(id)
	}
	return b.Bytes()
}

// deflate compresses b, and says whether that made it smaller.
func deflate(b []byte) ([]byte, bool) {
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestSpeed)
	if _, err := w.Write(b); err != nil {
		return nil, false
	}
	if err := w.Close(); err != nil {
		return nil, false
	}
	if buf.Len() >= len(b) {
		return nil, false
	}
	return buf.Bytes(), true
}

// inflate decompresses b, refusing to grow past maxPlaintext.
func inflate(b []byte) ([]byte, error) {
	r := flate.NewReader(bytes.NewReader(b))
	defer func() { _ = r.Close() }()
	out, err := io.ReadAll(io.LimitReader(r, maxPlaintext+1))
	if err != nil {
		return nil, fmt.Errorf("decompressing a payload: %w", err)
	}
	if len(out) > maxPlaintext {
		return nil, fmt.Errorf("a payload decompresses to more than %d bytes", maxPlaintext)
	}
	return out, nil
}

// DataConverter is the SDK's default converter with payloads sealed by the
// key ring's strict codec.
func DataConverter(keys *KeyRing) converter.DataConverter { return NewDataConverter(New(keys)) }

// NewDataConverter is the SDK's default converter with payloads sealed by c.
func NewDataConverter(c *Codec) converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

// FailureConverter moves a failure's message and stack trace into an
// encoded payload, so error texts (which may name a mailbox or a folder)
// are sealed too, stamped with the workflow's ID like every other payload.
func FailureConverter(dc converter.DataConverter) converter.FailureConverter {
	return failureConverter{
		DefaultFailureConverter: temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
			DataConverter:          dc,
			EncodeCommonAttributes: true,
		}),
		dc: dc,
	}
}

// failureConverter is the SDK's default failure converter handing its
// serialization context on to the data converter it encodes with (the
// SDK's own does not).
type failureConverter struct {
	*temporal.DefaultFailureConverter
	dc converter.DataConverter
}

var _ converter.FailureConverterWithSerializationContext = failureConverter{}

func (f failureConverter) WithSerializationContext(sc converter.SerializationContext) converter.FailureConverter {
	return FailureConverter(converter.WithDataConverterSerializationContext(f.dc, sc))
}
