// Package prometheus runs a real Prometheus (Debian's prometheus package)
// for tests: a throwaway configuration scraping the given targets, a
// private data directory, a free port on loopback, and queries through its
// HTTP API. It also finds promtool, which comes with it, to check the
// configuration shipped under deploy/. Production code never imports it.
package prometheus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mailwave/testkit/kitfs"
)

// Environment variables.
const (
	// BinEnv and PromtoolEnv override where the prometheus and promtool
	// binaries are.
	BinEnv      = "MAILWAVE_PROMETHEUS_BIN"
	PromtoolEnv = "MAILWAVE_PROMTOOL_BIN"
	// RequireEnv set to "1" (make test sets it) turns a missing Prometheus
	// from a skipped test into a failed one, as it does a missing Dovecot.
	RequireEnv = "MAILWAVE_REQUIRE_DOVECOT"
)

// Binary finds one of the prometheus package's programs ("prometheus" or
// "promtool"): the environment variable env when set, else on the PATH or
// in /usr/bin.
func Binary(name, env string) (string, error) {
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", env, p, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := filepath.Join("/usr/bin", name)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("no %s: apt-get install -y prometheus (or set %s)", name, env)
}

// Need finds a binary for a test: missing, it skips the test, or fails it
// under RequireEnv=1.
func Need(t testing.TB, name, env string) string {
	t.Helper()
	p, err := Binary(name, env)
	if err == nil {
		return p
	}
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%v (%s=1)", err, RequireEnv)
	}
	t.Skip(err)
	return ""
}

// CheckConfig runs `promtool check config` on a configuration file and
// returns an error holding promtool's output when it finds a problem.
func CheckConfig(ctx context.Context, promtool, path string) error {
	if out, err := Command(ctx, promtool, "check", "config", path); err != nil {
		return fmt.Errorf("promtool check config %s: %w\n%s", path, err, out)
	}
	return nil
}

// Command runs one of the package's programs and returns what it printed.
func Command(ctx context.Context, bin string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}

// Server is a running Prometheus.
type Server struct {
	URL string // http://127.0.0.1:PORT
	Log string // its log file
	cmd *exec.Cmd
}

// Start starts Prometheus in a t.TempDir(), scraping targets (host:port,
// path /metrics) every interval, and stops it when the test ends.
func Start(t testing.TB, targets []string, interval time.Duration) *Server {
	t.Helper()
	bin := Need(t, "prometheus", BinEnv)
	dir := t.TempDir()
	config := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(config, []byte(Config(targets, interval)), 0o600); err != nil {
		t.Fatal(err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{URL: fmt.Sprintf("http://127.0.0.1:%d", port), Log: filepath.Join(dir, "prometheus.log")}
	logFile, err := os.Create(s.Log)
	if err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(bin,
		"--config.file="+config,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+fmt.Sprintf("127.0.0.1:%d", port),
		"--log.level=warn")
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	if err := s.cmd.Start(); err != nil {
		_ = logFile.Close()
		t.Fatalf("starting %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = s.cmd.Wait(); _ = logFile.Close(); close(exited) }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("prometheus log (%s), tail:\n%s", s.Log, kitfs.Tail(s.Log, 20))
		}
	})
	if err := s.waitReady(exited, time.Minute); err != nil {
		t.Fatalf("%v; its log (%s), tail:\n%s", err, s.Log, kitfs.Tail(s.Log, 20))
	}
	return s
}

// Config is a Prometheus configuration scraping targets every interval.
func Config(targets []string, interval time.Duration) string {
	quoted := make([]string, len(targets))
	for i, t := range targets {
		quoted[i] = strconv.Quote(t)
	}
	return fmt.Sprintf(`global:
  scrape_interval: %[1]s
  scrape_timeout: %[1]s
scrape_configs:
  - job_name: mailwave
    static_configs:
      - targets: [%[2]s]
`, interval, strings.Join(quoted, ", "))
}

// waitReady waits for /-/ready to answer 200, or for the process to end.
func (s *Server) waitReady(exited <-chan struct{}, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("prometheus exited before it was ready")
		default:
		}
		resp, err := http.Get(s.URL + "/-/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("prometheus at %s not ready after %s", s.URL, within)
}

// Sample is one series of a query's answer.
type Sample struct {
	Metric map[string]string
	Value  float64
}

// Query runs an instant PromQL query and returns its samples (a vector;
// a scalar is one sample with no labels).
func (s *Server) Query(ctx context.Context, q string) ([]Sample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := s.get(ctx, "/api/v1/query", url.Values{"query": {q}}, &data); err != nil {
		return nil, fmt.Errorf("query %q: %w", q, err)
	}
	switch data.ResultType {
	case "vector":
		var rows []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(data.Result, &rows); err != nil {
			return nil, fmt.Errorf("query %q: %w", q, err)
		}
		out := make([]Sample, len(rows))
		for i, r := range rows {
			v, err := sampleValue(r.Value)
			if err != nil {
				return nil, fmt.Errorf("query %q: %w", q, err)
			}
			out[i] = Sample{Metric: r.Metric, Value: v}
		}
		return out, nil
	case "scalar":
		var pair [2]any
		if err := json.Unmarshal(data.Result, &pair); err != nil {
			return nil, fmt.Errorf("query %q: %w", q, err)
		}
		v, err := sampleValue(pair)
		return []Sample{{Value: v}}, err
	}
	return nil, fmt.Errorf("query %q: a %s answer, not a vector or a scalar", q, data.ResultType)
}

// Series returns the label sets of the series matching a selector.
func (s *Server) Series(ctx context.Context, match string) ([]map[string]string, error) {
	var out []map[string]string
	if err := s.get(ctx, "/api/v1/series", url.Values{"match[]": {match}}, &out); err != nil {
		return nil, fmt.Errorf("series %q: %w", match, err)
	}
	return out, nil
}

// get calls the HTTP API and decodes its data into v.
func (s *Server) get(ctx context.Context, path string, params url.Values, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+path+"?"+params.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var answer struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		return fmt.Errorf("HTTP %d, not the API's JSON: %.200s", resp.StatusCode, body)
	}
	if answer.Status != "success" {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, answer.Error)
	}
	return json.Unmarshal(answer.Data, v)
}

// sampleValue reads [time, "value"].
func sampleValue(pair [2]any) (float64, error) {
	str, ok := pair[1].(string)
	if !ok {
		return 0, fmt.Errorf("sample value %v is not a string", pair[1])
	}
	return strconv.ParseFloat(str, 64)
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
