// Package codec encrypts every payload mailwave hands to Temporal: workflow
// and activity inputs and results, signals, queries, heartbeats, memos and,
// through the failure converter, error messages and stack traces. Search
// attributes and workflow IDs are not payloads and stay opaque by design.
//
// Payloads are compressed when that makes them smaller, then sealed with
// AES-256-GCM under the key ring's current key; the key's ID travels in the
// payload's metadata, so a key ring that still holds older keys decrypts
// what they sealed (rotation without breaking a 14-day workflow). Each
// payload sealed in a workflow's or an activity's context carries that
// workflow's ID in plain metadata, bound to the ciphertext, so the codec
// server can record which workflow a person decoded. A payload that is not
// encrypted is refused (ErrNotEncrypted): a client without the key cannot
// start or signal a workflow. Only a codec AcceptingPlain passes it through
// (histories recorded before encryption, and the codec server); encoding
// never writes one.
package codec

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"mailwave/internal/secretfile"
)

// KeysEnv holds a key ring inline: "ID=BASE64,ID=BASE64,...", the first key
// the current one.
const KeysEnv = "MAILWAVE_CODEC_KEYS"

// TestKeys is the key ring of mailwave's own tests and benchmarks, in the
// form of $MAILWAVE_CODEC_KEYS. It is published in mailwave's source, so it
// protects nothing: a key ring holding its key is refused where workers,
// starters and the codec server load theirs (LoadKeyFile, FromEnvOrFile)
// unless $MAILWAVE_ALLOW_TEST_KEYS is 1, which only the tests and
// benchmarks set.
const TestKeys = "test-1=bWFpbHdhdmUtdGVzdC1rZXktMzItYnl0ZXMtbG9uZyE="

// AllowTestKeysEnv, set to 1, lets a process load TestKeys' key (tests and
// benchmarks).
const AllowTestKeysEnv = "MAILWAVE_ALLOW_TEST_KEYS"

// testKey is TestKeys' key.
var testKey = []byte("mailwave-test-key-32-bytes-long!")

// ErrTestKey refuses a key ring that holds the published test key.
var ErrTestKey = errors.New("the key ring holds mailwave's test key, which is published in its source and protects nothing: make a key of your own (starter codec-key new)")

// keyIDPattern keeps key IDs short and printable: they travel in every
// payload's metadata.
var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidKeyID reports whether id may name a key: 1-64 letters, digits, '.',
// '_' or '-'.
func ValidKeyID(id string) bool { return keyIDPattern.MatchString(id) }

// KeyRing is a set of AES-256 keys by ID, one of them current.
type KeyRing struct {
	current   string
	aeads     map[string]cipher.AEAD
	published string // the ID of testKey in the ring, if it is there
}

// NewKeyRing builds a key ring from 32-byte keys by ID; current names the
// key new payloads are sealed with.
func NewKeyRing(current string, keys map[string][]byte) (*KeyRing, error) {
	if len(keys) == 0 {
		return nil, errors.New("the key ring is empty")
	}
	r := &KeyRing{current: current, aeads: map[string]cipher.AEAD{}}
	for id, key := range keys {
		if !keyIDPattern.MatchString(id) {
			// Not quoted: a mistyped line may have key material where the
			// ID belongs.
			return nil, errors.New("a key ID is not 1-64 letters, digits, '.', '_' or '-'")
		}
		if len(key) != 32 {
			return nil, fmt.Errorf("key %s: %d bytes, want 32 (AES-256)", id, len(key))
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", id, err)
		}
		r.aeads[id] = aead
		if bytes.Equal(key, testKey) {
			r.published = id
		}
	}
	if _, ok := r.aeads[current]; !ok {
		return nil, fmt.Errorf("the current key %q is not in the key ring (it has %s)", current, strings.Join(r.IDs(), ", "))
	}
	return r, nil
}

// Current is the ID of the key new payloads are sealed with.
func (r *KeyRing) Current() string { return r.current }

// IDs lists the key IDs, sorted.
func (r *KeyRing) IDs() []string {
	ids := make([]string, 0, len(r.aeads))
	for id := range r.aeads {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// ParseKeys reads a key ring written as "ID=BASE64" entries separated by
// commas, newlines or spaces; blank lines and lines starting with '#' are
// skipped. The first entry is the current key. No key material is quoted in
// an error.
func ParseKeys(text string) (*KeyRing, error) {
	keys := map[string][]byte{}
	current := ""
	n := 0
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for _, entry := range strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			n++
			// Errors name the entry by number only: a line missing its ID
			// would otherwise show its key (base64 padding holds '=').
			id, b64, ok := strings.Cut(entry, "=")
			if !ok || !keyIDPattern.MatchString(id) || b64 == "" {
				return nil, fmt.Errorf("entry %d: want ID=BASE64, the ID 1-64 letters, digits, '.', '_' or '-'", n)
			}
			key, err := base64.StdEncoding.DecodeString(b64)
			if err != nil {
				return nil, fmt.Errorf("entry %d: the key is not base64", n)
			}
			if len(key) != 32 {
				return nil, fmt.Errorf("entry %d: the key is %d bytes, want 32 (AES-256)", n, len(key))
			}
			if _, dup := keys[id]; dup {
				return nil, fmt.Errorf("entry %d: key ID %s is given twice", n, id)
			}
			keys[id] = key
			if current == "" {
				current = id
			}
		}
	}
	return NewKeyRing(current, keys)
}

// LoadKeyFile reads a key ring file (ParseKeys' format). Like every secret
// file, it must be a regular file that neither group nor others may read.
func LoadKeyFile(path string) (*KeyRing, error) {
	b, err := secretfile.Read(path)
	if err != nil {
		return nil, fmt.Errorf("codec key file: %w", err)
	}
	r, err := ParseKeys(string(b))
	if err == nil {
		err = r.refusePublished()
	}
	if err != nil {
		return nil, fmt.Errorf("codec key file %s: %w", path, err)
	}
	return r, nil
}

// refusePublished refuses a key ring holding the published test key,
// unless $MAILWAVE_ALLOW_TEST_KEYS is 1.
func (r *KeyRing) refusePublished() error {
	if r.published != "" && os.Getenv(AllowTestKeysEnv) != "1" {
		return fmt.Errorf("key %s: %w", r.published, ErrTestKey)
	}
	return nil
}

// FromEnvOrFile loads the key ring from path when set, else from $KeysEnv;
// neither set is an error naming both.
func FromEnvOrFile(path string) (*KeyRing, error) {
	if path != "" {
		return LoadKeyFile(path)
	}
	if v, ok := os.LookupEnv(KeysEnv); ok && strings.TrimSpace(v) != "" {
		r, err := ParseKeys(v)
		if err == nil {
			err = r.refusePublished()
		}
		if err != nil {
			return nil, fmt.Errorf("$%s: %w", KeysEnv, err)
		}
		return r, nil
	}
	return nil, ErrNoKeys
}

// ErrNoKeys says no key ring was configured.
var ErrNoKeys = fmt.Errorf("no payload encryption keys: give --codec-key-file or set $%s", KeysEnv)
