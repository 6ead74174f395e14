package doctor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/authrelay/authrelay/deploy"
)

// serverURL returns the URL to check: Config.URL, else the config's listen
// address (a wildcard host is reached through loopback).
func (d *checker) serverURL() (string, bool) {
	if d.cfg.URL != "" {
		return d.cfg.URL, true
	}
	if d.opts == nil {
		return "", false
	}
	url, err := deploy.ListenURL(d.opts)
	return url, err == nil
}

// dialAddr returns the host:port a NATS URL names.
func dialAddr(raw string) (string, error) {
	if !strings.Contains(raw, "://") {
		raw = "nats://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if u.Hostname() == "" {
		return "", fmt.Errorf("no host in %q", raw)
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), strconv.Itoa(server.DEFAULT_PORT)), nil
	}
	return u.Host, nil
}

// response is a reply from the system account's request API.
type response[T any] struct {
	Server struct {
		Name    string `json:"name"`
		ID      string `json:"id"`
		Version string `json:"ver"`
	} `json:"server"`
	Data  T `json:"data"`
	Error *struct {
		Code        int    `json:"code"`
		Description string `json:"description"`
	} `json:"error"`
}

// request sends a request to the system API and decodes the reply.
func request[T any](ctx context.Context, nc *nats.Conn, subject string, timeout time.Duration) (response[T], error) {
	var r response[T]
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	msg, err := nc.RequestWithContext(ctx, subject, nil)
	if err != nil {
		return r, fmt.Errorf("request %s: %w", subject, err)
	}
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return r, fmt.Errorf("request %s: %w", subject, err)
	}
	if r.Error != nil {
		return r, fmt.Errorf("request %s: %d %s", subject, r.Error.Code, r.Error.Description)
	}
	return r, nil
}

// userInfo is the data of a $SYS.REQ.USER.INFO reply.
type userInfo struct {
	User    string `json:"user"`
	Account string `json:"account"`
}

// varz is the part of a VARZ reply doctor reads.
type varz struct {
	ID           string    `json:"server_id"`
	Name         string    `json:"server_name"`
	Version      string    `json:"version"`
	Now          time.Time `json:"now"`
	AuthTimeout  float64   `json:"auth_timeout"`
	ConfigDigest string    `json:"config_digest"`
}

// accountz is the part of an ACCOUNTZ reply doctor reads.
type accountz struct {
	Accounts []string `json:"accounts"`
}

func (d *checker) connect(url, user, password string, timeout time.Duration) (*nats.Conn, error) {
	return d.connectWith(url, nats.UserInfo(user, password), timeout)
}

// connectWith connects with the login option login.
func (d *checker) connectWith(url string, login nats.Option, timeout time.Duration) (*nats.Conn, error) {
	opts := append([]nats.Option{login, nats.Timeout(timeout),
		nats.NoReconnect(), nats.Name("authrelay doctor")}, d.cfg.NATSOptions...)
	return nats.Connect(url, opts...)
}

// logins returns the relay's and the admin's logins as the directory's
// mode has them (deploy.Layout.Identity), or, when it cannot tell, the
// user and password logins of secrets.json; admin is nil when there is
// none.
func (d *checker) logins() (relay, admin nats.Option, operator *deploy.OperatorInfo) {
	s := d.secrets
	l := deploy.Layout{Dir: d.cfg.Dir}
	if id, err := l.Identity(); err == nil && id.Mode == deploy.ModeOperator {
		if oi, err := l.Operator(); err == nil {
			return id.RelayLogin, id.AdminLogin, &oi
		}
	}
	relay = nats.UserInfo(s.RelayUser, s.RelayPassword)
	if s.AdminUser != "" && s.AdminPassword != "" {
		admin = nats.UserInfo(s.AdminUser, s.AdminPassword)
	}
	return relay, admin, nil
}

func (d *checker) checkNetwork(ctx context.Context) {
	url, ok := d.serverURL()
	if !ok {
		d.fail("server", "no server to check: the server config gives no usable listen address; give --nats URL (or --offline to check files only)")
		return
	}
	addr, err := dialAddr(url)
	if err != nil {
		d.fail("server", "--nats %q: %v: give a URL such as nats://127.0.0.1:4222", url, err)
		return
	}
	dialer := net.Dialer{Timeout: d.cfg.DialTimeout}
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		d.fail("server", "nothing answers at %s (%v): start the server: nats-server -c %s (or 'authrelay serve --embedded --dir %s'), or give the right --nats URL", url, err, d.cfg.ConfigPath, d.cfg.Dir)
		return
	}
	conn.Close()
	d.ok("server", "%s accepts connections", url)

	timeout := time.Duration(0)
	if d.opts != nil {
		timeout = serverAuthTimeout(d.opts)
	}
	if d.secrets != nil {
		d.checkRelayLogin(ctx, url)
		if t := d.checkAdmin(ctx, url); t > 0 {
			timeout = t
		}
	}
	if timeout <= 0 {
		timeout = server.AUTH_TIMEOUT
	}
	if ctx.Err() != nil {
		return // interrupted: skip the probe, which takes up to the timeout
	}
	d.checkRelayAnswers(url, timeout)
}

func (d *checker) checkRelayLogin(ctx context.Context, url string) {
	const check = "relay login"
	s := d.secrets
	login, _, op := d.logins()
	nc, err := d.connectWith(url, login, d.cfg.DialTimeout)
	if errors.Is(err, nats.ErrAuthorization) {
		d.fail(check, "the server refused the relay's user %q with relay_password from secrets.json: the server runs a config whose callout account user does not match this directory (another --dir, or nats.conf edited); 'authrelay serve' cannot connect", s.RelayUser)
		return
	}
	if err != nil {
		d.fail(check, "the relay's user %q could not log in: %v", s.RelayUser, err)
		return
	}
	defer nc.Close()
	r, err := request[userInfo](ctx, nc, "$SYS.REQ.USER.INFO", d.cfg.RequestTimeout)
	if err != nil {
		d.ok(check, "the relay's user %q logs in (its account is unknown: %v)", s.RelayUser, err)
		return
	}
	want := deploy.AuthAccount
	if d.opts != nil && d.opts.AuthCallout != nil {
		want = d.opts.AuthCallout.Account
	}
	if op != nil {
		want = op.AuthAccount // operator mode: accounts go by public key
	}
	if r.Data.Account != want {
		d.fail(check, "the relay's user %q logs in to account %s, not the callout account %s: the relay would not receive login requests", s.RelayUser, r.Data.Account, want)
		return
	}
	d.ok(check, "the relay's user %q logs in to the callout account %s", s.RelayUser, r.Data.Account)
}

// checkAdmin logs in as the system account's admin, reports the server and
// the clock skew, and returns the server's authorization timeout (0 when
// unknown).
func (d *checker) checkAdmin(ctx context.Context, url string) time.Duration {
	const check = "admin login"
	s := d.secrets
	_, login, _ := d.logins()
	if login == nil {
		return 0
	}
	nc, err := d.connectWith(url, login, d.cfg.DialTimeout)
	if errors.Is(err, nats.ErrAuthorization) {
		d.fail(check, "the server refused the admin user %q with admin_password from secrets.json: the system account's static user does not match this directory, or allowed_accounts sends the admin to the relay; the admin login is what works while the relay is down", s.AdminUser)
		return 0
	}
	if err != nil {
		d.fail(check, "the admin user %q could not log in: %v", s.AdminUser, err)
		return 0
	}
	defer nc.Close()
	ui, err := request[userInfo](ctx, nc, "$SYS.REQ.USER.INFO", d.cfg.RequestTimeout)
	if err == nil && d.opts != nil && d.opts.SystemAccount != "" && ui.Data.Account != d.opts.SystemAccount {
		d.fail(check, "the admin user %q logs in to account %s, not the system account %s", s.AdminUser, ui.Data.Account, d.opts.SystemAccount)
		return 0
	}

	// Ask the server this connection is on, not whichever answers a PING.
	id := nc.ConnectedServerId()
	before := d.cfg.Now()
	v, err := request[varz](ctx, nc, "$SYS.REQ.SERVER."+id+".VARZ", d.cfg.RequestTimeout)
	after := d.cfg.Now()
	if err != nil {
		d.fail(check, "the admin user %q logs in, but the server does not answer system requests (%v): is the admin's account the system account of the server at %s?", s.AdminUser, err, url)
		return 0
	}
	srv := v.Data.ID
	if v.Data.Name != "" && v.Data.Name != v.Data.ID {
		srv = fmt.Sprintf("%q (%s)", v.Data.Name, v.Data.ID)
	}
	d.ok(check, "the admin user %q logs in to the system account; server %s, nats-server %s", s.AdminUser, srv, v.Data.Version)

	// The running config is the one checked above?
	if d.opts != nil {
		path, want := d.cfg.ConfigPath, d.opts.ConfigDigest()
		// 'serve --embedded --listen' runs nats.conf through
		// embedded.conf, whose digest covers nats.conf too.
		if emb := filepath.Join(d.cfg.Dir, deploy.EmbeddedConf); want != v.Data.ConfigDigest {
			if o, err := server.ProcessConfigFile(emb); err == nil && o.ConfigDigest() != "" {
				path, want = emb, o.ConfigDigest()
			}
		}
		if want != "" && v.Data.ConfigDigest != "" && want != v.Data.ConfigDigest {
			d.warn("config in use", "the server at %s runs a config that differs from %s (digest %s, file %s): it runs another file, or was not reloaded since the file changed; reload it ('authrelay reload'; an auth_callout change needs a restart) or give --config with the file it runs", url, path, v.Data.ConfigDigest, want)
		} else if want != "" {
			d.ok("config in use", "the server at %s runs %s as it is now", url, path)
		}
	}

	if d.storeAccounts != nil {
		d.checkServerAccounts(ctx, nc, id)
	}

	// Clock skew, against the midpoint of the request.
	mid := before.Add(after.Sub(before) / 2)
	skew := v.Data.Now.Sub(mid)
	abs := skew.Abs().Round(time.Millisecond)
	dir := "ahead of"
	if skew < 0 {
		dir = "behind"
	}
	if abs == 0 {
		dir = "off"
	}
	switch {
	case abs > d.cfg.MaxSkew:
		d.skewFault = fmt.Sprintf("this host's clock is %v %s the server's", abs, flip(dir))
		d.fail("clock", "the server's clock is %v %s this host's, beyond the relay's clock skew tolerance (serve --max-clock-skew, %v by default): a relay on this host drops every login request of this server as issued too far in the past or future, so every login through it fails; sync both clocks (NTP)", abs, dir, d.cfg.MaxSkew)
	case abs > d.cfg.SkewWarn:
		d.warn("clock", "the server's clock is %v %s this host's: logins work (the relay tolerates %v by default), but session expiries are off by as much; sync both clocks (NTP)", abs, dir, d.cfg.MaxSkew)
	default:
		d.ok("clock", "the server's clock is within %v of this host's (%v %s)", d.cfg.SkewWarn, abs, dir)
	}
	return time.Duration(v.Data.AuthTimeout * float64(time.Second))
}

func (d *checker) checkServerAccounts(ctx context.Context, nc *nats.Conn, id string) {
	const check = "server accounts"
	if _, _, op := d.logins(); op != nil {
		// The server loads an account's JWT from its resolver on first use:
		// its list holds only those in use.
		d.ok(check, "operator mode: the server takes accounts from its resolver (%s), where 'authrelay account' pushes them", deploy.ResolverDir)
		return
	}
	r, err := request[accountz](ctx, nc, "$SYS.REQ.SERVER."+id+".ACCOUNTZ", d.cfg.RequestTimeout)
	if err != nil {
		d.warn(check, "could not list the server's accounts: %v", err)
		return
	}
	var missing []string
	for n, users := range d.storeAccounts {
		if users > 0 && !slices.Contains(r.Data.Accounts, n) {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		d.fail(check, "the running server does not know account(s) %s that authrelay places users in: their logins are refused; reload the server ('authrelay reload')", strings.Join(missing, ", "))
		return
	}
	d.ok(check, "the server knows every account authrelay places users in")
}

// flip turns the server's direction relative to this host into this
// host's relative to the server.
func flip(dir string) string {
	switch dir {
	case "ahead of":
		return "behind"
	case "behind":
		return "ahead of"
	}
	return dir
}

// checkRelayAnswers logs in with a random username and password: a relay
// denies it at once, while a server with no relay waits its authorization
// timeout before refusing.
func (d *checker) checkRelayAnswers(url string, timeout time.Duration) {
	const check = "relay answering"
	user := "authrelay-doctor-" + randomHex(8)
	start := time.Now()
	nc, err := d.connect(url, user, randomHex(32), timeout+3*time.Second)
	elapsed := time.Since(start)
	// A server that got no answer refuses at its timeout; the client may
	// then see the server's first PING before the refusal ("expected
	// 'PONG', got 'PING'"), so any error that came after the whole timeout
	// counts as unanswered.
	unanswered := errors.Is(err, nats.ErrAuthorization) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, nats.ErrTimeout) || elapsed >= timeout
	switch {
	case err == nil:
		nc.Close()
		d.fail(check, "a login with a random username and password was accepted: the server at %s lets anyone in (no auth_callout in the config it runs, or a relay that grants unknown users); check the server's config and restart it", url)
	case errors.Is(err, nats.ErrAuthorization) && elapsed < timeout:
		e := elapsed.Round(time.Millisecond)
		if elapsed > d.cfg.DecisionTimeout {
			d.warn(check, "a relay answered, but denying a login for an unknown user took %v, close to the server's %v authorization timeout: the relay is overloaded or its database slow; run more relays or give them more CPU", e, timeout)
			return
		}
		d.ok(check, "a relay denied a test login for an unknown user in %v (the server waits up to %v)", e, timeout)
	case d.skewFault != "" && unanswered:
		d.fail(check, "no relay is answering logins: the server refused a test login only after its %v authorization timeout; %s, beyond the relay's clock skew tolerance, so a relay on this host drops every request (its log says \"clock skew beyond tolerance\", its /readyz fails on \"clock\"); sync the clocks (NTP)", timeout, d.skewFault)
	case unanswered:
		d.fail(check, "no relay is answering logins: the server refused a test login only after its %v authorization timeout, so every authrelay user's login fails; start one: authrelay serve --dir %s --nats %s (if one runs, its log says why it does not answer)", timeout, d.cfg.Dir, url)
	default:
		d.fail(check, "a test login failed in an unexpected way after %v: %v", elapsed.Round(time.Millisecond), err)
	}
}

// randomHex returns n random bytes, hex-encoded.
func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms.
	}
	return hex.EncodeToString(b)
}
