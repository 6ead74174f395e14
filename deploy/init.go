package deploy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/store"
)

// InitOptions is what Init writes into a new directory.
type InitOptions struct {
	// Accounts are the application accounts to create, without limits;
	// none when empty.
	Accounts []string
	// Listen is the client listen address (HOST:PORT) written into
	// nats.conf, such as DefaultListen.
	Listen string
	// BcryptCost is the cost of the admin's bcrypt hash in nats.conf; 0
	// means DefaultBcryptCost.
	BcryptCost int
	// TLS, when both files are given, is the server's certificate and key
	// for client TLS, written into nats.conf's tls block with absolute
	// paths. Init checks that they load as a pair first.
	TLS TLSFiles
	// ServerName is nats.conf's server_name; empty means
	// DefaultServerName(Listen). Every server of a cluster needs its own.
	ServerName string
	// MQTTListen, when set, is the HOST:PORT of an mqtt block in
	// nats.conf.
	MQTTListen string
	// Cluster, when set, makes the directory a node of a cluster (see
	// ClusterConf); a node that joins (Cluster.Join) gets no Accounts: its
	// state comes from the cluster log.
	Cluster ClusterOptions
	// Operator makes an operator-mode directory (decentralized JWT; see
	// the Operator mode comment in operator.go): operator.json, the
	// account JWTs in DIR/jwt and a nats.conf with the operator, its
	// resolver and a default sentinel, instead of accounts.conf and an
	// auth_callout block.
	Operator bool
	// Nsc, with Operator, is an nsc key export directory: the operator
	// and its accounts already exist and nsc manages them; init takes
	// the keys a relay needs from it instead of creating an operator (see
	// operator_nsc.go), and the application accounts are those it allows.
	Nsc string
	// Notes receives what init wants the admin to know (an nsc account it
	// did not import, and why); nil discards them.
	Notes func(string)
}

// Init creates the directory's files: the database with o.Accounts,
// secrets.json (mode 0600) with fresh keys and passwords, accounts.conf and
// nats.conf. It refuses bad options with an ErrInvalid error, refuses to
// touch a directory that already holds any of the files, and removes what
// it wrote if a step fails.
func Init(ctx context.Context, l Layout, o InitOptions) (err error) {
	if err := ValidateListen(o.Listen, false); err != nil {
		return err
	}
	cluster, err := planCluster(o.Cluster)
	if err != nil {
		return err
	}
	if o.Nsc != "" && !o.Operator {
		return invalidf("--nsc goes with --operator: an nsc export is an operator's keys")
	}
	if o.Nsc != "" && len(o.Accounts) > 0 {
		return invalidf("--account with --nsc: the accounts are nsc's; init imports every account AUTH allows whose signing key is exported")
	}
	if cluster != nil && o.Operator {
		return invalidf("--operator with a cluster: operator mode runs on a single node for now; leave out --cluster-listen, --routes and --join")
	}
	if cluster != nil && cluster.joined != nil && len(o.Accounts) > 0 {
		return invalidf("--account with --join: a joining node starts with no state of its own and takes its accounts from the cluster; add accounts on any node with 'authrelay account add'")
	}
	seen := map[string]bool{}
	for _, a := range o.Accounts {
		if err := CheckAccountName(a); err != nil {
			return err
		}
		if seen[a] {
			return invalidf("account %q given twice", a)
		}
		seen[a] = true
	}
	switch {
	case o.TLS.Cert == "" && o.TLS.Key == "":
	case o.TLS.Cert == "" || o.TLS.Key == "":
		return invalidf("--tls-cert and --tls-key go together: give both")
	default:
		if _, err := tls.LoadX509KeyPair(o.TLS.Cert, o.TLS.Key); err != nil {
			return invalidf("--tls-cert %q, --tls-key %q: %v: give a PEM certificate and its private key", o.TLS.Cert, o.TLS.Key, err)
		}
		var err error
		if o.TLS.Cert, err = filepath.Abs(o.TLS.Cert); err != nil {
			return fmt.Errorf("init: %w", err)
		}
		if o.TLS.Key, err = filepath.Abs(o.TLS.Key); err != nil {
			return fmt.Errorf("init: %w", err)
		}
	}
	if o.TLS.ClientCA != "" {
		if o.TLS.Cert == "" {
			return invalidf("--tls-client-ca needs --tls-cert and --tls-key: the server verifies client certificates only over TLS")
		}
		b, err := os.ReadFile(o.TLS.ClientCA)
		if err != nil || !x509.NewCertPool().AppendCertsFromPEM(b) {
			return invalidf("--tls-client-ca %q: not a readable PEM file of CA certificates", o.TLS.ClientCA)
		}
		if o.TLS.ClientCA, err = filepath.Abs(o.TLS.ClientCA); err != nil {
			return fmt.Errorf("init: %w", err)
		}
	}
	js, err := newJetStreamConf(o.ServerName, o.Listen, l.Path(ServerConf), o.MQTTListen)
	if err != nil {
		return err
	}
	for _, name := range []string{SecretsFile, ServerConf, AccountsConf, DatabaseFile, ClusterFile, ClusterConf, OperatorFile, ResolverDir} {
		if _, err := os.Stat(l.Path(name)); err == nil {
			return fmt.Errorf("%s already holds %s: init never overwrites an existing directory's keys or users; use another --dir, or remove the directory to start over", l.Dir, name)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("init: %w", err)
		}
	}
	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
		return fmt.Errorf("init: create directory: %w", err)
	}
	var written []string
	defer func() {
		if err != nil {
			for _, p := range written {
				os.Remove(p)
			}
		}
	}()

	s, err := NewSecrets()
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	switch {
	case cluster != nil && cluster.joined != nil:
		s = *cluster.joined
	case cluster != nil:
		s = newRouteCredentials(s)
	}
	var conf []byte
	var opFiles map[string][]byte
	switch {
	case o.Operator && o.Nsc != "":
		x, err := readNscExport(o.Nsc)
		if err != nil {
			return err
		}
		p, err := x.plan()
		if err != nil {
			return err
		}
		s = p.secrets(s)
		o.Accounts = p.apps
		if o.Notes != nil {
			o.Notes(fmt.Sprintf("imported from nsc: operator %s, callout account %s, relay user %s, admin %s, accounts %v", p.opName, p.authName, p.relay, p.admin, p.apps))
			for _, n := range p.skipped {
				o.Notes("not imported: " + n)
			}
		}
		conf, opFiles, err = operatorFiles(l, p.set, o.Listen, o.TLS, js)
		if err != nil {
			return fmt.Errorf("init: %w", err)
		}
	case o.Operator:
		if s, err = newOperatorSecrets(s, o.Accounts); err != nil {
			return fmt.Errorf("init: %w", err)
		}
		set, err := operatorJWTs(s, appAccounts(o.Accounts))
		if err != nil {
			return fmt.Errorf("init: %w", err)
		}
		if conf, opFiles, err = operatorFiles(l, set, o.Listen, o.TLS, js); err != nil {
			return fmt.Errorf("init: %w", err)
		}
	default:
		conf, err = renderServerConf(s, o.Listen, l.Path(ServerConf), o.BcryptCost, o.TLS, js)
	}
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	var clusterConf, clusterJSON []byte
	if cluster != nil {
		if conf, err = appendClusterInclude(conf, l, o.Listen); err != nil {
			return fmt.Errorf("init: %w", err)
		}
		if clusterConf, clusterJSON, err = cluster.files(s); err != nil {
			return fmt.Errorf("init: %w", err)
		}
	}

	dbPath := l.Path(DatabaseFile)
	written = append(written, dbPath, dbPath+"-wal", dbPath+"-shm")
	db, err := store.Open(ctx, dbPath)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	db.ReservedAccounts = func() ([]string, error) { return []string{AuthAccount, SystemAccount}, nil } // those of conf
	for _, a := range o.Accounts {
		if err := db.AddAccount(ctx, a); err != nil {
			db.Close()
			return fmt.Errorf("init: %w", err)
		}
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("init: close database: %w", err)
	}

	b, err := marshalSecrets(s)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	type file struct {
		name string
		data []byte
		perm os.FileMode
	}
	files := []file{{SecretsFile, b, 0o600}}
	if o.Operator {
		dir := l.Path(ResolverDir)
		if err := os.Mkdir(dir, 0o700); err != nil {
			return fmt.Errorf("init: %w", err)
		}
		// Init made it (Mkdir refuses one that exists): all of it goes.
		defer func() {
			if err != nil {
				os.RemoveAll(dir)
			}
		}()
		for _, name := range sortedKeys(opFiles) {
			files = append(files, file{name, opFiles[name], 0o644})
		}
	} else {
		files = append(files, file{AccountsConf, RenderAccountsConf(appAccounts(o.Accounts)), 0o644})
	}
	files = append(files, file{ServerConf, conf, 0o644})
	if cluster != nil {
		files = append(files, file{ClusterConf, clusterConf, 0o600}, file{ClusterFile, clusterJSON, 0o644})
	}
	for _, f := range files {
		p := l.Path(f.name)
		written = append(written, p)
		if err := WriteFileAtomic(p, f.data, f.perm); err != nil {
			return fmt.Errorf("init: write %s: %w", f.name, err)
		}
	}
	return nil
}

// appAccounts turns account names into accounts without limits.
func appAccounts(names []string) []accounts.Account {
	out := make([]accounts.Account, len(names))
	for i, n := range names {
		out[i] = accounts.Account{Name: n}
	}
	return out
}

// ValidateListen checks a HOST:PORT listen address, with an ErrInvalid
// error that names it as the --listen flag of init and serve. Port 0,
// meaning any free port, is allowed only where anyPort is set.
func ValidateListen(listen string, anyPort bool) error {
	return validateAddr("--listen", listen, anyPort)
}

// validateAddr is ValidateListen for the flag named flag.
func validateAddr(flag, listen string, anyPort bool) error {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return invalidf("%s %q: want HOST:PORT, such as 127.0.0.1:4222", flag, accounts.Clip(listen, 80))
	}
	if host == "" {
		return invalidf("%s %q: give a host, such as 127.0.0.1 or 0.0.0.0", flag, listen)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || (n == 0 && !anyPort) {
		return invalidf("%s %q: port must be a number from 1 to 65535", flag, listen)
	}
	return nil
}
