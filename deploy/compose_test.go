// Package deploy_test checks docker-compose.yml, the Dockerfile and the
// ignore files for secrets kept out of environments, images and the
// repository.
package deploy_test

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

type service struct {
	Image       string
	User        string
	Environment map[string]string
	Secrets     []string
}

type compose struct {
	Services map[string]service
	Secrets  map[string]struct{ File string }
}

func read(t *testing.T, name string) string {
	b, err := os.ReadFile(filepath.Join("..", name))
	require.NoError(t, err)
	return string(b)
}

func load(t *testing.T) compose {
	var c compose
	require.NoError(t, yaml.Unmarshal([]byte(read(t, "docker-compose.yml")), &c))
	require.NotEmpty(t, c.Services)
	return c
}

// secretName is an environment variable that would hold a secret itself
// (its *_FILE twin holds a path).
var secretName = regexp.MustCompile(`(?i)(PASSWORD|PASSWD|PWD|SECRET|TOKEN|CODEC_KEYS|API_KEY)`)

// interpolated is compose's ${VAR} in a value.
var interpolated = regexp.MustCompile(`\$\{(\w+)`)

// urlPassword is a URL carrying a password.
var urlPassword = regexp.MustCompile(`://[^/@\s:]+:[^/@\s]*@`)

// No service has a secret in its environment: a secret's variable is its
// *_FILE form, naming a compose secret; no URL carries a password; the
// roster store is reached as mailwave's own role with verify-full.
func TestNoSecretInEnvironment(t *testing.T) {
	c := load(t)
	for name, s := range c.Services {
		for k, v := range s.Environment {
			if secretName.MatchString(k) {
				assert.True(t, strings.HasSuffix(k, "_FILE"), "service %s: %s holds a secret in the environment; give the file (%s_FILE) from a compose secret", name, k, k)
				assert.True(t, strings.HasPrefix(v, "/run/secrets/"), "service %s: %s=%s is not a compose secret", name, k, v)
			}
			assert.NotRegexp(t, urlPassword, v, "service %s: %s is a URL with a password", name, k)
			for _, m := range interpolated.FindAllStringSubmatch(v, -1) {
				assert.False(t, secretName.MatchString(m[1]), "service %s: %s takes the secret $%s from the operator's environment (.env)", name, k, m[1])
			}
			if k == "MAILWAVE_WAVES_DIR" {
				assert.Contains(t, v, "sslmode=verify-full", "service %s", name)
				assert.Contains(t, v, "passfile=/run/secrets/", "service %s", name)
				assert.NotContains(t, v, "://temporal@", "service %s: mailwave's own role, not Temporal's", name)
			}
		}
	}
}

// Every service given a secret runs as a named user (its image's own),
// and every secret is a file some service reads.
func TestSecretsAreFilesOfTheirReaders(t *testing.T) {
	c := load(t)
	require.NotEmpty(t, c.Secrets)
	used := map[string]bool{}
	for name, s := range c.Services {
		for _, sec := range s.Secrets {
			used[sec] = true
			assert.Contains(t, c.Secrets, sec, "service %s", name)
		}
		if len(s.Secrets) > 0 {
			assert.Regexp(t, `^\d+:\d+$`, s.User, "service %s reads secrets: it runs as a fixed user, who owns them", name)
		}
		if s.Image == "mailwave:local" {
			assert.Equal(t, "65532:65532", s.User, "service %s: the image's user (Dockerfile USER)", name)
		}
	}
	script := read(t, "scripts/compose-secrets.sh")
	for sec, f := range c.Secrets {
		assert.True(t, used[sec], "secret %s is read by no service", sec)
		assert.True(t, strings.HasPrefix(f.File, "./deploy/secrets/"), "secret %s: %s", sec, f.File)
		assert.Contains(t, script, "put "+filepath.Base(f.File)+" ", "scripts/compose-secrets.sh makes %s", f.File)
	}
	assert.Contains(t, read(t, "Dockerfile"), "USER 65532:65532")
}

// ignored reports whether path (relative to the repository) is matched by
// a line of a .gitignore or .dockerignore: the path or a directory above it,
// anchored when the pattern has a slash, by base name otherwise.
func ignored(rules, path string) bool {
	parts := strings.Split(path, "/")
	for _, line := range strings.Split(rules, "\n") {
		p := strings.TrimSpace(line)
		if p == "" || strings.HasPrefix(p, "#") || strings.HasPrefix(p, "!") {
			continue
		}
		p = strings.TrimSuffix(p, "/")
		anywhere := strings.HasPrefix(p, "**/")
		p = strings.TrimPrefix(strings.TrimPrefix(p, "**/"), "/")
		for i := 1; i <= len(parts); i++ {
			c := strings.Join(parts[:i], "/")
			if !anywhere && strings.Contains(p, "/") {
				if ok, _ := filepath.Match(p, c); ok {
					return true
				}
			} else if ok, _ := filepath.Match(p, parts[i-1]); ok {
				return true
			}
		}
	}
	return false
}

// Every secret path is named by .gitignore and .dockerignore: the compose
// secrets, the TLS keys, .env, and the files mailwave's own commands make.
func TestSecretPathsIgnored(t *testing.T) {
	c := load(t)
	paths := []string{".env", ".env.local", "deploy/tls/ca.pem", "deploy/tls/mailwave-key.pem", "deploy/tls/postgresql-key.pem",
		"deploy/secrets/x", "data/production/codec-keys", "data/production/key-secret", "data/production/mailwave.pgpass",
		"codec-keys", "key-secret", "codec-token", "tls/server.key", "mailwave.pgpass", "deploy/access/signing.key", "signing.key"}
	for _, f := range c.Secrets {
		paths = append(paths, strings.TrimPrefix(f.File, "./"))
	}
	sort.Strings(paths)
	git, docker := read(t, ".gitignore"), read(t, ".dockerignore")
	for _, p := range paths {
		assert.True(t, ignored(git, p), ".gitignore does not name %s", p)
		assert.True(t, ignored(docker, p), ".dockerignore does not name %s", p)
	}
	for _, p := range []string{"go.mod", "worker/main.go", "docker-compose.yml"} {
		assert.False(t, ignored(git, p), ".gitignore names %s", p)
	}
	assert.False(t, ignored(docker, "worker/main.go"), ".dockerignore names the source")
}

// The image's build copies the Go source only: no COPY . ., nothing of
// deploy/ or data/.
func TestDockerfileCopiesSourceOnly(t *testing.T) {
	var sources []string
	for _, line := range strings.Split(read(t, "Dockerfile"), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || (f[0] != "COPY" && f[0] != "ADD") {
			continue
		}
		if strings.HasPrefix(f[1], "--from=") {
			continue // from the build stage, not the context
		}
		args := f[1 : len(f)-1]
		for _, a := range args {
			if strings.HasPrefix(a, "--") {
				continue
			}
			sources = append(sources, a)
		}
	}
	require.NotEmpty(t, sources)
	for _, s := range sources {
		assert.NotContains(t, []string{".", "./", "*"}, s, "COPY of the whole context")
		assert.False(t, strings.HasPrefix(s, "deploy") || strings.HasPrefix(s, "data") || strings.HasPrefix(s, ".env"), "COPY %s", s)
		st, err := os.Stat(filepath.Join("..", s))
		require.NoError(t, err, "COPY %s: not in the repository", s)
		if st.IsDir() {
			m, _ := filepath.Glob(filepath.Join("..", s, "*.go"))
			sub, _ := filepath.Glob(filepath.Join("..", s, "*", "*.go"))
			assert.NotEmpty(t, append(m, sub...), "COPY %s: not Go source", s)
		}
	}
	assert.Contains(t, sources, "go.mod")
	assert.Contains(t, sources, "go.sum")
}
