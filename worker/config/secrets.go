package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"

	"mailwave/internal/secretfile"
)

// SecretEnvPrefix starts the environment variable that holds a secret.
const SecretEnvPrefix = "MAILWAVE_SECRET_"

// Secrets looks up secret values by name: the configuration file names
// secrets, never holds them, and workflow inputs carry only the names.
type Secrets struct {
	file   string            // "" when the configuration names no secrets file
	values map[string]string // from the file, read once
}

// Secrets reads the configuration's secrets_file, if any: a YAML mapping of
// secret name to value. The file is read once; a changed value needs a worker
// restart. It must be a regular file (a symbolic link to one, as secret
// mounts make, will do) that neither group nor others may access (mode 0600
// or 0400), else it is refused unread, with its mode and the chmod that
// fixes it; a secret mount must be given such a mode (Kubernetes:
// defaultMode 0400).
func (f *File) Secrets() (*Secrets, error) {
	s := &Secrets{file: f.SecretsFile, values: map[string]string{}}
	if f.SecretsFile == "" {
		return s, nil
	}
	data, err := secretfile.Read(f.SecretsFile)
	if err != nil {
		return nil, fmt.Errorf("secrets file: %w", err)
	}
	var probs Problems
	bad := func(line int, path, msg string) {
		probs = append(probs, Problem{File: f.SecretsFile, Line: line, Path: path, Msg: msg})
	}
	var doc yaml.Node
	switch err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); {
	case errors.Is(err, io.EOF):
		return s, nil
	case err != nil:
		// The parser's messages quote no content, so no value leaks here.
		return nil, fmt.Errorf("secrets file %s: %w", f.SecretsFile, err)
	}
	if len(doc.Content) == 0 {
		return s, nil
	}
	root := deref(doc.Content[0])
	if isNull(root) {
		return s, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("secrets file %s: expected a mapping of secret name to value", f.SecretsFile)
	}
	first := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := deref(root.Content[i]), deref(root.Content[i+1])
		if k.Kind != yaml.ScalarNode || k.Value == "" {
			bad(k.Line, "", "secret names must be non-empty strings")
			continue
		}
		if line, dup := first[k.Value]; dup {
			bad(k.Line, k.Value, fmt.Sprintf("given twice (first on line %d)", line))
			continue
		}
		first[k.Value] = k.Line
		// Never describe the value: it is the secret.
		if v.Kind != yaml.ScalarNode || isNull(v) {
			bad(k.Line, k.Value, "the value must be a string")
			continue
		}
		s.values[k.Value] = v.Value
	}
	if len(probs) > 0 {
		return nil, probs
	}
	return s, nil
}

// SecretEnv returns the environment variable that holds the named secret:
// MAILWAVE_SECRET_ and the name upper-cased, each character other than an
// ASCII letter or digit made '_'.
func SecretEnv(name string) string {
	var b strings.Builder
	b.WriteString(SecretEnvPrefix)
	for _, r := range strings.ToUpper(name) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Lookup returns the named secret's value, from the environment first, then
// the secrets file. An empty value counts as unset. Errors name the secret
// and where it was looked for, never a value.
func (s *Secrets) Lookup(name string) (string, error) {
	if name == "" {
		return "", errors.New("no secret name given")
	}
	env := SecretEnv(name)
	if v := os.Getenv(env); v != "" {
		return v, nil
	}
	if s.file == "" {
		return "", fmt.Errorf("secret %q not found: environment variable %s is unset and no secrets_file is configured", name, env)
	}
	v, ok := s.values[name]
	if ok && v == "" {
		return "", fmt.Errorf("secret %q is empty in %s and environment variable %s is unset", name, s.file, env)
	}
	if !ok {
		return "", fmt.Errorf("secret %q not found: environment variable %s is unset and %s does not name it", name, env, s.file)
	}
	return v, nil
}

// template is a parsed template: literal text and placeholders alternating,
// starting with literal text.
type template []string

var placeholders = []string{"address", "local", "domain"}

func parseTemplate(t string) (template, error) {
	var parts template
	rest := t
	for {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			return append(parts, rest), nil
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("%q has a { with no closing }", t)
		}
		name := rest[open+1 : open+end]
		known := false
		for _, p := range placeholders {
			known = known || name == p
		}
		if !known {
			return nil, fmt.Errorf("unknown placeholder {%s} in %q (use {address}, {local} or {domain})", name, t)
		}
		parts = append(parts, rest[:open], name)
		rest = rest[open+end+1:]
	}
}

// Expand fills a template's {address}, {local} and {domain} from an address.
// Errors never quote the address.
func Expand(tmpl, address string) (string, error) {
	parts, err := parseTemplate(tmpl)
	if err != nil {
		return "", err
	}
	if len(parts) == 1 {
		return tmpl, nil
	}
	at := strings.LastIndexByte(address, '@')
	if at <= 0 || at == len(address)-1 {
		return "", fmt.Errorf("expanding %q: the address is not of the form local@domain", tmpl)
	}
	vals := map[string]string{"address": address, "local": address[:at], "domain": address[at+1:]}
	var b strings.Builder
	for i, p := range parts {
		if i%2 == 0 {
			b.WriteString(p)
		} else {
			b.WriteString(vals[p])
		}
	}
	return b.String(), nil
}
