// Command oidc-refresh is a NATS client that logs in to authrelay with an
// OAuth2 access token from the client-credentials grant, and keeps logging
// in as the token expires: the session authrelay grants ends at the
// token's exp, the server closes the connection then, and nats.go
// reconnects, asking TokenHandler for the token to send, which the token
// source has refreshed with the provider by then.
//
//	go run ./examples/oidc-refresh -nats nats://127.0.0.1:4222 \
//	    -token-url https://login.example.com/oauth2/token \
//	    -client-id svc -client-secret-file secret.txt -subject 'app.>'
//
// The provider must be known to authrelay ('authrelay idp add'), with the
// audience of the tokens this client gets (-audience, sent as the audience
// parameter some providers want; others take it from -scope), and the
// client's sub bound to a user ('authrelay user add SUB --idp NAME').
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

func main() {
	natsURL := flag.String("nats", nats.DefaultURL, "the NATS server")
	tokenURL := flag.String("token-url", "", "the provider's token endpoint (required)")
	clientID := flag.String("client-id", "", "the OAuth2 client id (required)")
	secretFile := flag.String("client-secret-file", "", "a file holding the client secret (required; never a flag value)")
	audience := flag.String("audience", "", "the audience parameter of the token request, if the provider wants one")
	scope := flag.String("scope", "", "scopes to ask for, space-separated")
	subject := flag.String("subject", "app.>", "the subject to subscribe to")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if *tokenURL == "" || *clientID == "" || *secretFile == "" {
		fmt.Fprintln(os.Stderr, "oidc-refresh: give -token-url, -client-id and -client-secret-file")
		os.Exit(2)
	}
	secret, err := os.ReadFile(*secretFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "oidc-refresh: read the client secret: %v\n", err)
		os.Exit(1)
	}
	cc := clientcredentials.Config{ClientID: *clientID, ClientSecret: strings.TrimSpace(string(secret)), TokenURL: *tokenURL}
	if *scope != "" {
		cc.Scopes = strings.Fields(*scope)
	}
	if *audience != "" {
		cc.EndpointParams = url.Values{"audience": {*audience}}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := Run(ctx, *natsURL, cc.TokenSource(ctx), *subject, log); err != nil {
		fmt.Fprintf(os.Stderr, "oidc-refresh: %v\n", err)
		os.Exit(1)
	}
}

// Run connects to url with the tokens of src, subscribes to subject and
// logs what arrives until ctx ends, reconnecting with a fresh token each
// time the server closes the connection at a token's expiry.
func Run(ctx context.Context, url string, src oauth2.TokenSource, subject string, log *slog.Logger) error {
	tokens := &currentToken{src: src, log: log}
	if _, err := tokens.get(); err != nil {
		return err
	}
	nc, err := nats.Connect(url,
		nats.Name("oidc-refresh example"),
		// Asked on every connect and reconnect: the token to send now.
		nats.TokenHandler(tokens.token),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { log.Info("disconnected", "err", err) }),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info("reconnected with a fresh token") }),
	)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	if _, err := nc.Subscribe(subject, func(m *nats.Msg) { log.Info("message", "subject", m.Subject, "bytes", len(m.Data)) }); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	log.Info("connected", "url", nc.ConnectedUrlRedacted(), "subject", subject)
	<-ctx.Done()
	return nil
}

// currentToken hands out the token source's current access token; the
// oauth2 token source refreshes it shortly before it expires.
type currentToken struct {
	src oauth2.TokenSource
	log *slog.Logger
	mu  sync.Mutex
}

func (c *currentToken) get() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, err := c.src.Token()
	if err != nil {
		return "", fmt.Errorf("get a token: %w", err)
	}
	if t.AccessToken == "" {
		return "", errors.New("get a token: the provider sent no access token")
	}
	return t.AccessToken, nil
}

// token is the nats.TokenHandler: on a failure it logs and sends nothing,
// which the relay refuses, and nats.go tries again at the next reconnect.
func (c *currentToken) token() string {
	t, err := c.get()
	if err != nil {
		c.log.Error("no fresh token", "err", err)
		return ""
	}
	return t
}
