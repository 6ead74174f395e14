package doctor

import (
	"slices"

	"github.com/authrelay/authrelay/deploy"
)

// LayoutConfig is a Config for the authrelay directory of l: its
// secrets.json, its user database and, as the server config, its
// nats.conf. The caller sets the rest, and may name another ConfigPath.
func LayoutConfig(l deploy.Layout) Config {
	return Config{Dir: l.Dir, SecretsPath: l.Path(deploy.SecretsFile), DatabasePath: l.Path(deploy.DatabaseFile),
		ConfigPath: l.Path(deploy.ServerConf)}
}

// Failed returns the checks of results that failed, each named once, in
// the order they ran; none when the deployment passed.
func Failed(results []Result) []string {
	var failed []string
	for _, r := range results {
		if r.Status == Fail && !slices.Contains(failed, r.Check) {
			failed = append(failed, r.Check)
		}
	}
	return failed
}
