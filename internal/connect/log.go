package connect

import (
	"cmp"
	"fmt"
	"log/slog"

	"github.com/spf13/pflag"
	tlog "go.temporal.io/sdk/log"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"
	"go.uber.org/zap/zapcore"
)

// LogOptions choose the log level and format.
type LogOptions struct {
	Level  string
	Format string
}

// AddFlags adds the logging flags. Values already set are the defaults
// (the starter keeps to warnings); otherwise info and console.
func (o *LogOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Level, "log-level", cmp.Or(o.Level, "info"), "debug, info, warn or error")
	fs.StringVar(&o.Format, "log-format", cmp.Or(o.Format, "console"), "console or json")
}

// Build returns a zap logger and the same logger for the Temporal SDK,
// handed over through slog.
func (o *LogOptions) Build() (*zap.Logger, tlog.Logger, error) {
	level, err := zapcore.ParseLevel(o.Level)
	if err != nil {
		return nil, nil, fmt.Errorf("--log-level: %w", err)
	}
	var cfg zap.Config
	switch o.Format {
	case "json":
		cfg = zap.NewProductionConfig()
	case "console":
		cfg = zap.NewDevelopmentConfig()
		cfg.Development = false
		cfg.DisableStacktrace = true
	default:
		return nil, nil, fmt.Errorf("--log-format %q: want console or json", o.Format)
	}
	cfg.Level = zap.NewAtomicLevelAt(level)
	z, err := cfg.Build()
	if err != nil {
		return nil, nil, err
	}
	return z, Redacting(tlog.NewStructuredLogger(slog.New(zapslog.NewHandler(z.Core())))), nil
}
