package deploy

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedOptions configures StartEmbedded.
type EmbeddedOptions struct {
	// Listen, when set, is the client HOST:PORT overriding nats.conf's
	// listen; port 0 means any free port.
	Listen string
	// Check verifies the parsed config before the server starts, such as
	// that its auth_callout delegates logins to this relay's keys; its
	// error stops the start. It is required.
	Check func(*server.Options) error
	// Logger receives the server's log lines; nil discards them.
	Logger *slog.Logger
}

// embeddedReady is how long StartEmbedded waits for the server to accept
// clients.
const embeddedReady = 10 * time.Second

// StartEmbedded runs nats-server in-process from DIR/nats.conf, taking no
// signals itself, and returns it once it accepts clients, with the options
// it runs. The caller shuts it down.
func StartEmbedded(l Layout, o EmbeddedOptions) (*server.Server, *server.Options, error) {
	if o.Check == nil {
		return nil, nil, errors.New("start nats-server: no config check given")
	}
	if o.Listen != "" {
		if err := ValidateListen(o.Listen, true); err != nil {
			return nil, nil, err
		}
	}
	path := l.Path(ServerConf)
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", path, err)
	}
	if o.Listen != "" {
		host, port, _ := net.SplitHostPort(o.Listen)
		opts.Host = host
		opts.Port, _ = strconv.Atoi(port)
		if opts.Port == 0 {
			opts.Port = server.RANDOM_PORT
		}
	}
	if err := o.Check(opts); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	opts.NoSigs = true
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("start nats-server: %w", err)
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ns.SetLoggerV2(&serverLogger{l: logger}, opts.Debug, opts.Trace, false)
	go ns.Start()
	if !ns.ReadyForConnections(embeddedReady) {
		ns.Shutdown()
		return nil, nil, fmt.Errorf("start nats-server: not ready to accept clients on %s:%d within 10s (is the port in use? try --listen 127.0.0.1:0)", opts.Host, opts.Port)
	}
	return ns, opts, nil
}

// serverLogger sends the embedded server's log lines to slog.
type serverLogger struct{ l *slog.Logger }

func (s *serverLogger) Noticef(format string, v ...any) { s.l.Info(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Warnf(format string, v ...any)   { s.l.Warn(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Fatalf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Errorf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Debugf(format string, v ...any)  { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Tracef(format string, v ...any)  { s.l.Debug(fmt.Sprintf(format, v...)) }
