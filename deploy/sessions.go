package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// sessionsPage is the most connections one server lists per request.
const sessionsPage = 1024

// Session is one client connection as its server reports it.
type Session struct {
	User     string    `json:"user"`
	Account  string    `json:"account"`
	Client   string    `json:"client"` // the client's IP:port as the server sees it
	Server   string    `json:"server"`
	ServerID string    `json:"server_id"`
	ClientID uint64    `json:"client_id"`
	Name     string    `json:"name,omitempty"`
	Start    time.Time `json:"connected_since"`
	// Expires is when the connection's user JWT expires and the server
	// closes it; zero when the server did not report a JWT.
	Expires time.Time `json:"jwt_expires,omitzero"`
}

// Sessions returns the client connections of every server that nc,
// connected as the system account's admin, can reach, of the user called
// user (every user when it is ""), ordered by user, then start: it asks
// $SYS.REQ.SERVER.PING.CONNZ with the user filter and waits up to wait for
// the servers' answers. truncated tells that a server had more than it
// listed.
func Sessions(ctx context.Context, nc *nats.Conn, user string, wait time.Duration) (out []Session, truncated bool, err error) {
	body, err := json.Marshal(server.ConnzOptions{Username: true, User: user, Limit: sessionsPage})
	if err != nil {
		return nil, false, err
	}
	err = ping(ctx, nc, "$SYS.REQ.SERVER.PING.CONNZ", body, wait, func(data []byte) bool {
		var resp struct {
			Server server.ServerInfo `json:"server"`
			Data   server.Connz      `json:"data"`
			Error  *server.ApiError  `json:"error"`
		}
		if json.Unmarshal(data, &resp) != nil || resp.Error != nil {
			return false
		}
		truncated = truncated || resp.Data.Total > len(resp.Data.Conns)
		for _, c := range resp.Data.Conns {
			s := Session{User: c.AuthorizedUser, Account: c.Account, Client: fmt.Sprintf("%s:%d", c.IP, c.Port),
				Server: resp.Server.Name, ServerID: resp.Server.ID, ClientID: c.Cid, Name: c.Name, Start: c.Start}
			if c.JWT != "" {
				if uc, err := jwt.DecodeUserClaims(c.JWT); err == nil && uc.Expires > 0 {
					s.Expires = time.Unix(uc.Expires, 0)
				}
			}
			out = append(out, s)
		}
		return true
	})
	if err != nil {
		return nil, false, fmt.Errorf("list sessions: %w", err)
	}
	slices.SortFunc(out, func(a, b Session) int {
		if c := strings.Compare(a.User, b.User); c != 0 {
			return c
		}
		return a.Start.Compare(b.Start)
	})
	return out, truncated, nil
}

// ServerAccounts returns the accounts each server that nc, connected as the
// system account's admin, can reach has loaded, by server ID, asking
// $SYS.REQ.SERVER.PING.ACCOUNTZ and waiting up to wait for the answers.
func ServerAccounts(ctx context.Context, nc *nats.Conn, wait time.Duration) (map[string][]string, error) {
	out := map[string][]string{}
	err := ping(ctx, nc, "$SYS.REQ.SERVER.PING.ACCOUNTZ", nil, wait, func(data []byte) bool {
		var resp struct {
			Server server.ServerInfo `json:"server"`
			Data   struct {
				Accounts []string `json:"accounts"`
			} `json:"data"`
			Error *server.ApiError `json:"error"`
		}
		if json.Unmarshal(data, &resp) != nil || resp.Error != nil || resp.Server.ID == "" {
			return false
		}
		out[resp.Server.ID] = resp.Data.Accounts
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("list the servers' accounts: %w", err)
	}
	return out, nil
}

// ServersLacking asks the servers nc reaches, as ServerAccounts does,
// which have not loaded account: a server that has not refuses the logins
// the relay grants into it. It returns their IDs, sorted, and how many
// servers answered.
func ServersLacking(ctx context.Context, nc *nats.Conn, account string, wait time.Duration) (lacking []string, servers int, err error) {
	loaded, err := ServerAccounts(ctx, nc, wait)
	if err != nil {
		return nil, 0, err
	}
	for id, list := range loaded {
		if !slices.Contains(list, account) {
			lacking = append(lacking, id)
		}
	}
	slices.Sort(lacking)
	return lacking, len(loaded), nil
}
