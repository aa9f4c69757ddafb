package e2e_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestImportRules checks the layout's import rules (docs/layout.md, "Where things
// are") on the packages' own (non-test) imports:
//   - contract imports nothing of mailwave's, nor of Temporal (its search
//     attributes, Temporal's own type, are contract/searchattr);
//   - workflows import only the contract and the activities' types;
//   - the ports (mail/port) import only the contract's data types;
//   - no connector under mail/ reaches Temporal, the activities or workflow
//     code, directly or through another package of ours;
//   - only the test kit, e2e, the benchmarks and the local fleet import the
//     test kit (or "testing");
//   - only the worker, the starter (its target check) and the test kit
//     import the worker's wiring (worker/workerapp).
func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "mailwave/...").CombinedOutput()
	require.NoError(t, err, string(out))
	imports := map[string][]string{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		imports[f[0]] = f[1:]
	}
	require.Contains(t, imports, "mailwave/workflows")
	require.Contains(t, imports, "mailwave/testkit")

	const kit = "mailwave/testkit"
	// The packages that may import the test kit: the kit itself, the
	// end-to-end tests, the benchmarks, and the local fleet (the production
	// shape on one machine, for trying it, built from the kit's servers,
	// never deployed). Tests' own imports are not listed here.
	testOnly := func(p string) bool {
		return p == "mailwave/e2e" || p == kit || strings.HasPrefix(p, kit+"/") ||
			p == "mailwave/bench" || strings.HasPrefix(p, "mailwave/bench/") || p == "mailwave/localfleet"
	}
	for pkg, imps := range imports {
		for _, imp := range imps {
			mine := strings.HasPrefix(imp, "mailwave/")
			switch {
			case pkg == "mailwave/contract" && mine:
				t.Errorf("%s imports %s: the contract imports nothing of mailwave's", pkg, imp)
			case pkg == "mailwave/contract" && strings.HasPrefix(imp, "go.temporal.io/"):
				t.Errorf("%s imports %s: the contract's data types import nothing of Temporal", pkg, imp)
			case pkg == "mailwave/mail/port" && mine && imp != "mailwave/contract" && imp != "mailwave/roster/wavefile":
				t.Errorf("%s imports %s: the ports import only the contract's data types", pkg, imp)
			case pkg == "mailwave/workflows" && mine && imp != "mailwave/contract" && imp != "mailwave/contract/searchattr" &&
				imp != "mailwave/activities" && imp != "mailwave/plan":
				t.Errorf("%s imports %s: workflows import only the contract, the activities' types and the planner", pkg, imp)
			case pkg == "mailwave/plan" && (mine || strings.HasPrefix(imp, "go.temporal.io/")):
				// A pure function the workflows call (its result recorded
				// as a side effect): nothing of ours, nothing of Temporal.
				t.Errorf("%s imports %s: the planner imports only the standard library", pkg, imp)
			case strings.HasPrefix(pkg, "mailwave/activities") && imp == "mailwave/workflows":
				t.Errorf("%s imports workflow code", pkg)
			case !testOnly(pkg) && (imp == kit || strings.HasPrefix(imp, kit+"/") || imp == "testing"):
				t.Errorf("production package %s imports %s", pkg, imp)
			case imp == "mailwave/worker/workerapp" && pkg != "mailwave/worker" && pkg != "mailwave/starter" && pkg != kit:
				t.Errorf("%s imports the worker's wiring", pkg)
			}
		}
	}
	// What each connector reaches through the packages of ours it imports.
	for pkg := range imports {
		if !strings.HasPrefix(pkg, "mailwave/mail/") {
			continue
		}
		seen := map[string]bool{}
		var walk func(p string, path []string)
		walk = func(p string, path []string) {
			for _, imp := range imports[p] {
				via := append(path[:len(path):len(path)], imp)
				switch {
				case strings.HasPrefix(imp, "go.temporal.io/") || imp == "mailwave/activities" || imp == "mailwave/workflows":
					t.Errorf("connector %s reaches %s: %s", pkg, imp, strings.Join(via, " -> "))
				case strings.HasPrefix(imp, "mailwave/") && !seen[imp]:
					seen[imp] = true
					walk(imp, via)
				}
			}
		}
		walk(pkg, []string{pkg})
	}
}
