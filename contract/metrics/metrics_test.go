package metrics_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"mailwave/contract/metrics"
	"mailwave/testkit/kitfs"
	"mailwave/testkit/prometheus"
)

// deployFile is a file under deploy/ at the module root.
func deployFile(t *testing.T, rel string) string {
	t.Helper()
	root, err := kitfs.ModuleRoot()
	require.NoError(t, err)
	return filepath.Join(root, "deploy", rel)
}

// dashboardExprs reads every PromQL expression of the Grafana dashboard.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(deployFile(t, "grafana/dashboards/mailwave.json"))
	require.NoError(t, err)
	var doc any
	require.NoError(t, json.Unmarshal(b, &doc), "the dashboard is JSON")
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if e, ok := v["expr"].(string); ok {
				exprs = append(exprs, e)
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(doc)
	require.NotEmpty(t, exprs, "the dashboard has queries")
	return exprs
}

var metricName = regexp.MustCompile(`\b(?:mailwave|temporal)_[a-zA-Z0-9_]+`)

// dashboardMetrics is the metrics the dashboard's queries name, a
// histogram's _bucket, _sum and _count series under the histogram's name.
func dashboardMetrics(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, e := range dashboardExprs(t) {
		for _, n := range metricName.FindAllString(e, -1) {
			for _, h := range metrics.Histograms() {
				if n == h+"_bucket" || n == h+"_sum" || n == h+"_count" {
					n = h
				}
			}
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	slices.Sort(names)
	return names
}

// TestDashboardNamesKnownMetrics: every metric the dashboard queries is
// one mailwave or the SDK emits (the metrics e2e test sees each of them in
// a real Prometheus), and every one of mailwave's is on it.
func TestDashboardNamesKnownMetrics(t *testing.T) {
	known := append(metrics.Own(), metrics.SDK()...)
	used := dashboardMetrics(t)
	for _, n := range used {
		assert.Contains(t, known, n, "the dashboard queries %s, which nothing emits", n)
	}
	for _, n := range metrics.Own() {
		assert.Contains(t, used, n, "%s is not on the dashboard", n)
	}
}

// TestDashboardUsesTheProvisionedDataSource: each panel and query names
// the data source by the uid its provisioning gives it.
func TestDashboardUsesTheProvisionedDataSource(t *testing.T) {
	ds, err := os.ReadFile(deployFile(t, "grafana/provisioning/datasources/prometheus.yml"))
	require.NoError(t, err)
	require.Contains(t, string(ds), "uid: prometheus")
	b, err := os.ReadFile(deployFile(t, "grafana/dashboards/mailwave.json"))
	require.NoError(t, err)
	var d struct {
		Panels []struct {
			Title      string `json:"title"`
			Type       string `json:"type"`
			Datasource *struct {
				UID string `json:"uid"`
			} `json:"datasource"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(b, &d))
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		require.NotNil(t, p.Datasource, "panel %q", p.Title)
		assert.Equal(t, "prometheus", p.Datasource.UID, "panel %q", p.Title)
	}
}

// TestPrometheusConfigIsValid runs promtool on the configuration
// docker-compose.yml gives Prometheus.
func TestPrometheusConfigIsValid(t *testing.T) {
	promtool := prometheus.Need(t, "promtool", prometheus.PromtoolEnv)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, prometheus.CheckConfig(ctx, promtool, deployFile(t, "prometheus.yml")))
}

// TestDashboardQueriesParse has promtool parse every query of the
// dashboard, as recording rules, with Grafana's interval variables
// replaced by a range.
func TestDashboardQueriesParse(t *testing.T) {
	promtool := prometheus.Need(t, "promtool", prometheus.PromtoolEnv)
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	grafanaVars := strings.NewReplacer("$__rate_interval", "5m", "$__range", "1h")
	for i, e := range dashboardExprs(t) {
		fmt.Fprintf(&rules, "      - record: dashboard:query_%d\n        expr: %s\n", i, strconv.Quote(grafanaVars.Replace(e)))
	}
	path := filepath.Join(t.TempDir(), "rules.yml")
	require.NoError(t, os.WriteFile(path, []byte(rules.String()), 0o600))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := prometheus.Command(ctx, promtool, "check", "rules", path)
	require.NoError(t, err, "%s\n%s", out, rules.String())
}

// TestComposeWiresTheMetrics: in docker-compose.yml the workers serve
// their metrics on the port deploy/prometheus.yml scrapes, Prometheus
// reads that file, and Grafana mounts the dashboards where its
// provisioning looks for them.
func TestComposeWiresTheMetrics(t *testing.T) {
	root, err := kitfs.ModuleRoot()
	require.NoError(t, err)
	var compose struct {
		Services map[string]struct {
			Command []string `yaml:"command"`
			Volumes []string `yaml:"volumes"`
		} `yaml:"services"`
	}
	b, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &compose))

	scrape, err := os.ReadFile(deployFile(t, "prometheus.yml"))
	require.NoError(t, err)
	for _, svc := range []string{"worker", "router"} {
		cmd := compose.Services[svc].Command
		i := slices.Index(cmd, "--metrics-listen")
		require.True(t, i >= 0 && i+1 < len(cmd), "service %s has no --metrics-listen: %v", svc, cmd)
		assert.Equal(t, "0.0.0.0:9464", cmd[i+1], "service %s", svc)
	}
	assert.Contains(t, string(scrape), "names: [worker]")
	assert.Contains(t, string(scrape), "port: 9464")
	assert.Contains(t, string(scrape), `"router:9464"`)
	assert.Contains(t, compose.Services["prometheus"].Volumes, "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro")

	var provider struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	b, err = os.ReadFile(deployFile(t, "grafana/provisioning/dashboards/mailwave.yml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &provider))
	require.Len(t, provider.Providers, 1)
	assert.Contains(t, compose.Services["grafana"].Volumes, "./deploy/grafana/dashboards:"+provider.Providers[0].Options.Path+":ro")
	assert.Contains(t, compose.Services["grafana"].Volumes, "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro")
}
