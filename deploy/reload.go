package deploy

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/authrelay/authrelay/accounts"
)

// ClientURL returns the URL a client on this host reaches the server of
// DIR/nats.conf at (of DIR/embedded.conf while 'serve --embedded --listen'
// runs): its listen address, with an unspecified host (0.0.0.0,
// ::) as 127.0.0.1 and no port as 4222. It fails when nats.conf cannot be
// read or the server takes no clients (a port of -1).
func (l Layout) ClientURL() (string, error) {
	path := l.Path(ServerConf)
	if _, err := os.Stat(l.Path(EmbeddedConf)); err == nil {
		// 'serve --embedded --listen' runs, at the address it gives.
		path = l.Path(EmbeddedConf)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		return "", fmt.Errorf("read the listen address from %s: %w", path, err)
	}
	return ListenURL(opts)
}

// ListenURL is ClientURL for a parsed server config.
func ListenURL(o *server.Options) (string, error) {
	host, port := o.Host, o.Port
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	switch {
	case port == 0:
		port = server.DEFAULT_PORT
	case port < 0:
		return "", errors.New("the server takes no client connections (port -1): give the URL of one that does")
	}
	return "nats://" + net.JoinHostPort(host, strconv.Itoa(port)), nil
}

// Reloaded is one server's answer to a reload request.
type Reloaded struct {
	// Name and ID are the server's.
	Name, ID string
	// Err is why the server did not reload (its configuration is wrong,
	// say), or nil when it did.
	Err error
	// Pushed reports that the server's accounts were pushed to it
	// (operator mode) rather than its config reloaded.
	Pushed bool
}

// Done says what was done to the server: "reloaded", or in operator mode
// "pushed the accounts to".
func (r Reloaded) Done() string {
	if r.Pushed {
		return "pushed the accounts to"
	}
	return "reloaded"
}

// serverAPIResponse is the envelope of nats-server's $SYS.REQ.SERVER
// answers.
type serverAPIResponse struct {
	Server struct {
		Name string `json:"name"`
		ID   string `json:"id"`
	} `json:"server"`
	Error *struct {
		Code        int    `json:"code"`
		Description string `json:"description"`
	} `json:"error"`
}

// Reload asks every nats-server that nc, connected as the system account's
// admin, can reach to reload its configuration file, and returns what each
// answered, in name order. It finds the servers with
// $SYS.REQ.SERVER.PING.IDZ, waiting up to wait for their answers, and asks
// each with $SYS.REQ.SERVER.<id>.RELOAD (nats-server 2.10 and later). It
// reaches exactly the servers of the cluster nc is connected to, never a
// process it did not mean, unlike a signal to every nats-server on the host.
// It fails when no server answers.
func Reload(ctx context.Context, nc *nats.Conn, wait time.Duration) ([]Reloaded, error) {
	ids, err := servers(ctx, nc, wait)
	if err != nil {
		return nil, err
	}
	out := make([]Reloaded, 0, len(ids))
	for id, name := range ids {
		out = append(out, Reloaded{Name: name, ID: id, Err: reloadOne(ctx, nc, id, wait)})
	}
	slices.SortFunc(out, func(a, b Reloaded) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// reloadOne asks the server whose ID is id to reload its configuration
// file ($SYS.REQ.SERVER.<id>.RELOAD), and returns why it did not.
func reloadOne(ctx context.Context, nc *nats.Conn, id string, wait time.Duration) error {
	rctx, cancel := context.WithTimeout(ctx, wait+5*time.Second) // a reload parses the config
	defer cancel()
	msg, err := nc.RequestWithContext(rctx, "$SYS.REQ.SERVER."+id+".RELOAD", nil)
	if err != nil {
		return fmt.Errorf("no answer to the reload request: %w", err)
	}
	var resp serverAPIResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return fmt.Errorf("reload answer %q is not a server API response", msg.Data)
	}
	if resp.Error != nil {
		return errors.New(resp.Error.Description)
	}
	return nil
}

// servers returns the ID and name of every server that answers
// $SYS.REQ.SERVER.PING.IDZ within wait.
func servers(ctx context.Context, nc *nats.Conn, wait time.Duration) (map[string]string, error) {
	ids := map[string]string{}
	err := ping(ctx, nc, "$SYS.REQ.SERVER.PING.IDZ", nil, wait, func(data []byte) bool {
		var id server.ServerID // IDZ answers with the bare ID
		if json.Unmarshal(data, &id) != nil || id.ID == "" {
			return false
		}
		ids[id.ID] = id.Name
		return true
	})
	return ids, err
}

// ping publishes a request to every server on subject and hands each answer
// to answer, which tells whether it was a server's answer, until wait has
// passed or, once one server has answered, 250 ms more without an answer
// (the others of a cluster follow within moments). It fails when no server
// answered.
func ping(ctx context.Context, nc *nats.Conn, subject string, body []byte, wait time.Duration, answer func([]byte) bool) error {
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return fmt.Errorf("ask the servers: %w", err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subject, inbox, body); err != nil {
		return fmt.Errorf("ask the servers: %w", err)
	}
	answered := 0
	deadline := time.Now().Add(wait)
	for {
		left := time.Until(deadline)
		if answered > 0 {
			left = min(left, 250*time.Millisecond)
		}
		if left <= 0 {
			break
		}
		mctx, cancel := context.WithTimeout(ctx, left)
		msg, err := sub.NextMsgWithContext(mctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			break
		}
		if answer(msg.Data) {
			answered++
		}
	}
	if answered == 0 {
		return fmt.Errorf("no nats-server answered %s within %v: is %s connected as the system account's user?", subject, wait, nc.ConnectedUrlRedacted())
	}
	return nil
}

// Label names the server by its name and ID, or its ID alone when it has
// no name of its own (nats-server names a server by its ID); the name is
// made safe to print.
func (r Reloaded) Label() string {
	if r.Name == "" || r.Name == r.ID {
		return r.ID
	}
	return accounts.ClientText(r.Name) + " (" + r.ID + ")"
}

// ReloadAt connects to the server at url as l's system account admin
// (ConnectAdmin, with opts) and reloads every server it reaches (Reload),
// waiting up to wait for each.
func (l Layout) ReloadAt(ctx context.Context, url string, wait time.Duration, opts ...nats.Option) ([]Reloaded, error) {
	if mode, err := l.Mode(); err != nil {
		return nil, err
	} else if mode == ModeOperator {
		// Accounts are pushed, not reloaded (see operator_accounts.go).
		return l.pushOperatorAccounts(ctx, url, wait, opts...)
	}
	nc, err := l.ConnectAdmin(url, "authrelay reload", wait, opts...)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	return Reload(ctx, nc, wait)
}
