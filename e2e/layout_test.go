package e2e_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestImportRules checks the layout's import rules (README, "Where things
// are") on the packages' own (non-test) imports:
//   - contract imports nothing of mailwave's;
//   - workflows import only the contract and the activities' types;
//   - activities and the mail implementations import no workflow code;
//   - no production package imports the test kit or "testing";
//   - only the worker's wiring and the test kit import internal/workerapp.
func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "mailwave/...").CombinedOutput()
	require.NoError(t, err, string(out))
	imports := map[string][]string{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		imports[f[0]] = f[1:]
	}
	require.Contains(t, imports, "mailwave/workflows")
	require.Contains(t, imports, "mailwave/internal/testkit")

	const kit = "mailwave/internal/testkit"
	testOnly := func(p string) bool {
		// The production shape on one machine (production/) is for trying
		// it, built from the test kit's servers; it is never deployed.
		return p == "mailwave/e2e" || p == kit || strings.HasPrefix(p, kit+"/") ||
			p == "mailwave/bench" || strings.HasPrefix(p, "mailwave/bench/") || p == "mailwave/production"
	}
	for pkg, imps := range imports {
		for _, imp := range imps {
			mine := strings.HasPrefix(imp, "mailwave/")
			switch {
			case pkg == "mailwave/contract" && mine:
				t.Errorf("%s imports %s: the contract imports nothing of mailwave's", pkg, imp)
			case pkg == "mailwave/workflows" && mine && imp != "mailwave/contract" && imp != "mailwave/activities":
				t.Errorf("%s imports %s: workflows import only the contract and the activities' types", pkg, imp)
			case (strings.HasPrefix(pkg, "mailwave/activities") || strings.HasPrefix(pkg, "mailwave/mail/")) && imp == "mailwave/workflows":
				t.Errorf("%s imports workflow code", pkg)
			case !testOnly(pkg) && (imp == kit || strings.HasPrefix(imp, kit+"/") || imp == "testing"):
				t.Errorf("production package %s imports %s", pkg, imp)
			case imp == "mailwave/internal/workerapp" && pkg != "mailwave/worker" && pkg != kit:
				t.Errorf("%s imports the worker's wiring", pkg)
			}
		}
	}
}
