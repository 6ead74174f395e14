package doctor

import (
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/authrelay/authrelay/deploy"
)

// checkJetStream checks what JetStream, KV and MQTT need of the server
// config: a jetstream block and a server_name (which a directory made by
// an older init lacks: the message says what to add), and that no setting
// of the operator's clashes in silence with init's or accounts.conf's.
func (d *checker) checkJetStream(o *server.Options) {
	const check = "jetstream"
	path := d.cfg.ConfigPath
	l := deploy.Layout{Dir: d.cfg.Dir}
	if filepath.Clean(path) == filepath.Clean(l.Path(deploy.ServerConf)) {
		names := make([]string, 0, len(d.storeAccounts))
		for n := range d.storeAccounts {
			names = append(names, n)
		}
		slices.Sort(names)
		conflicts, err := l.ServerConfConflicts(names)
		if err != nil {
			d.fail(check, "%v", err)
			return
		}
		for _, c := range conflicts {
			d.fail(check, "%s", c)
		}
		if len(conflicts) > 0 {
			return
		}
	}
	add := `server_name: "` + deploy.DefaultServerName(net.JoinHostPort(o.Host, strconv.Itoa(o.Port))) + `" and jetstream { store_dir: "` + d.absDir() + `" } at the top level of ` + path + ", then restart nats-server (README: Upgrading)"
	switch {
	case !o.JetStream && len(d.jsAccounts) > 0:
		d.fail(check, "%s has JetStream off, so accounts %s (given --jetstream) have no JetStream, KV or MQTT: add %s", path, strings.Join(d.jsAccounts, ", "), add)
	case !o.JetStream:
		d.ok(check, "%s has JetStream off; accounts given --jetstream, KV and MQTT need it: add %s", path, add)
	case o.ServerName == "":
		d.warn(check, "%s enables JetStream without a server_name: MQTT and a cluster need one; add server_name: %q", path, deploy.DefaultServerName(net.JoinHostPort(o.Host, strconv.Itoa(o.Port))))
	default:
		d.ok(check, "%s enables JetStream (store in %s) as server %s; accounts with it: %s", path, o.StoreDir, o.ServerName, orNone(d.jsAccounts))
	}
}

func (d *checker) absDir() string {
	abs, err := filepath.Abs(d.cfg.Dir)
	if err != nil {
		return d.cfg.Dir
	}
	return abs
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none yet ('authrelay account set NAME --jetstream')"
	}
	return strings.Join(names, ", ")
}
