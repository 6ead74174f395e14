package deploy

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/authrelay/authrelay/accounts"
)

// ConnectAdmin connects to the server at url as l's system account admin,
// with the user and password of secrets.json: once, with no reconnect, the
// dial bounded by timeout, the connection named name (as the server's
// connz lists it), and opts added (the TLS options of
// NATSTarget.Resolve). An error names the URL with any password in it
// replaced, and the user, never the admin's password.
func (l Layout) ConnectAdmin(url, name string, timeout time.Duration, opts ...nats.Option) (*nats.Conn, error) {
	id, err := l.Identity()
	if err != nil {
		return nil, err
	}
	if id.AdminLogin == nil {
		return nil, fmt.Errorf("connect to %s: %s has no admin login (admin_user and admin_password, or the operator's admin_user_seed)", accounts.RedactURL(url), l.Path(SecretsFile))
	}
	all := append([]nats.Option{id.AdminLogin, nats.Name(name),
		nats.Timeout(timeout), nats.NoReconnect()}, opts...)
	nc, err := nats.Connect(url, all...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s as %s: %w", accounts.RedactURL(url), id.AdminUser, err)
	}
	return nc, nil
}
