// Package cliutil is what the worker's and the starter's command lines
// share besides the Temporal connection (internal/connect): every flag can
// be set from the environment.
package cliutil

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// EnvPrefix prefixes every flag's environment variable: --temporal-address
// is also MAILWAVE_TEMPORAL_ADDRESS.
const EnvPrefix = "MAILWAVE_"

// EnvName is the environment variable of a flag.
func EnvName(flag string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// BindEnv sets every flag not given on the command line from its
// environment variable, if that is set. A bad value names the variable.
func BindEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		if v, ok := os.LookupEnv(EnvName(f.Name)); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", EnvName(f.Name), v, e)
			}
		}
	})
	return err
}
