package main

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// module is the import path every authrelay package starts with.
const module = "github.com/authrelay/authrelay"

// layers is the architecture the README's Development section draws: each
// package of the module and the packages of the module it may import. A
// package not listed here, or an import not allowed here, fails
// TestPackagesImportOnlyWhatTheLayoutAllows; adding one means deciding
// where it sits, here and in the README.
var layers = map[string][]string{
	"accounts":                  {},
	"store":                     {"accounts"},
	"relay":                     {"accounts", "idp"},
	"deploy":                    {"accounts", "store", "cluster", "natsconf"},
	"natsconf":                  {"accounts", "store"},
	"doctor":                    {"accounts", "store", "deploy", "idp"},
	"metrics":                   {"accounts", "store", "relay"},
	"node":                      {"accounts", "store", "relay", "deploy", "metrics", "cluster", "idp"},
	"cluster":                   {"accounts", "store"},
	"idp":                       {"accounts"},
	"internal/bench":            {"accounts", "store", "deploy"},
	"internal/loopback":         {},
	"internal/nsctest":          {},
	"internal/testtls":          {},
	"internal/oidctest":         {},
	"internal/buildinfo":        {},
	"examples/oidc-refresh":     {},
	"internal/bench/grantrelay": {"accounts", "relay", "deploy", "internal/bench"},
	"cmd/authrelay":             {"accounts", "store", "relay", "deploy", "natsconf", "doctor", "metrics", "node", "cluster", "internal/bench", "idp", "internal/buildinfo"},
	"cmd/authrelay-bench":       {"accounts", "store", "relay", "deploy", "internal/bench", "internal/bench/grantrelay"},
}

// forbidden are outside packages a layer must never link, whatever it
// imports from the module: the domain knows neither SQLite nor a NATS
// connection, and the responder never opens SQLite itself.
var forbidden = map[string][]string{
	"accounts": {"github.com/mattn/go-sqlite3", "github.com/nats-io/nats.go", "github.com/nats-io/nats-server/v2/server"},
	"relay":    {"github.com/mattn/go-sqlite3", "github.com/nats-io/nats-server/v2/server"},
	"idp":      {"github.com/mattn/go-sqlite3", "github.com/nats-io/nats.go", "github.com/nats-io/nats-server/v2/server"},
	"natsconf": {"github.com/nats-io/nats.go"},
}

type listedPackage struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

// listPackages runs go list over the whole module, from its root.
func listPackages(t *testing.T) []listedPackage {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goCommand(t), "list", "-json=ImportPath,Imports,Deps", "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatal("go list found no packages")
	}
	return pkgs
}

// TestPackagesImportOnlyWhatTheLayoutAllows holds every package of the
// module to its place in the layout: it imports only the module packages
// its layer allows, never links what its layer forbids, and no package
// exists that the layout does not name.
func TestPackagesImportOnlyWhatTheLayoutAllows(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range listPackages(t) {
		rel, ok := strings.CutPrefix(p.ImportPath, module+"/")
		if !ok {
			t.Errorf("package %s is outside module %s", p.ImportPath, module)
			continue
		}
		seen[rel] = true
		allowed, ok := layers[rel]
		if !ok {
			t.Errorf("package %s has no place in the layout: add it to layers here and to the README's Development section", rel)
			continue
		}
		for _, imp := range p.Imports {
			dep, ok := strings.CutPrefix(imp, module+"/")
			if ok && !slices.Contains(allowed, dep) {
				t.Errorf("%s imports %s; its layer allows only %v", rel, dep, allowed)
			}
		}
		for _, bad := range forbidden[rel] {
			if slices.Contains(p.Deps, bad) {
				t.Errorf("%s links %s, which its layer forbids", rel, bad)
			}
		}
	}
	for rel := range layers {
		if !seen[rel] {
			t.Errorf("the layout names package %s, which does not exist: remove it here and from the README", rel)
		}
	}
}
