package doctor

import (
	"os"
	"reflect"
	"testing"

	"github.com/authrelay/authrelay/deploy"
)

// TestLayoutConfig: the Config of a directory is the one the tests here
// build by hand, 'authrelay doctor --dir DIR' checks.
func TestLayoutConfig(t *testing.T) {
	d := newTestDir(t, "127.0.0.1:4222")
	got := LayoutConfig(deploy.Layout{Dir: d.dir})
	want := d.config()
	want.Offline, want.DecisionTimeout, want.SkewWarn, want.MaxSkew = false, 0, 0, 0
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LayoutConfig = %+v, want %+v", got, want)
	}
}

// TestFailed: a fresh directory fails no check offline; one whose
// secrets.json others can read fails that check, named once.
func TestFailed(t *testing.T) {
	d := newTestDir(t, "127.0.0.1:4222")
	cfg := LayoutConfig(deploy.Layout{Dir: d.dir})
	cfg.Offline, cfg.DecisionTimeout, cfg.SkewWarn, cfg.MaxSkew = true, testDecisionTimeout, testSkewWarn, testMaxSkew
	results := Run(t.Context(), cfg)
	if f := Failed(results); len(f) != 0 {
		t.Fatalf("a fresh directory fails %v:\n%+v", f, results)
	}
	if err := os.Chmod(d.path(deploy.SecretsFile), 0o644); err != nil {
		t.Fatal(err)
	}
	results = Run(t.Context(), cfg)
	f := Failed(results)
	if len(f) == 0 || f[0] != secretsName {
		t.Errorf("with secrets.json readable by others: failed %v, want %s first\n%+v", f, secretsName, results)
	}
	seen := map[string]bool{}
	for _, c := range f {
		if seen[c] {
			t.Errorf("check %s named twice in %v", c, f)
		}
		seen[c] = true
	}
	// Every failing result's check is named.
	for _, r := range results {
		if r.Status == Fail && !seen[r.Check] {
			t.Errorf("failing check %s not in %v", r.Check, f)
		}
	}
}
