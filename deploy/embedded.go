package deploy

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
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

// StartEmbedded runs nats-server in-process from DIR/nats.conf (through
// DIR/embedded.conf when o.Listen overrides its address), taking no
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
	if o.Listen != "" {
		// The server runs a file that includes nats.conf and sets the
		// address, so that its own reload (SIGHUP to serve, or
		// $SYS.REQ.SERVER.<id>.RELOAD from 'authrelay reload') keeps
		// the address instead of refusing a changed port.
		host, port, _ := net.SplitHostPort(o.Listen)
		if port == "0" {
			port = strconv.Itoa(server.RANDOM_PORT)
		}
		if err := writeEmbeddedConf(l, host, port); err != nil {
			return nil, nil, err
		}
		path = l.Path(EmbeddedConf)
	}
	// Errors name nats.conf, the file to fix, whichever the server runs.
	conf := l.Path(ServerConf)
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		os.Remove(l.Path(EmbeddedConf))
		return nil, nil, fmt.Errorf("load %s: %w", conf, err)
	}
	if err := o.Check(opts); err != nil {
		os.Remove(l.Path(EmbeddedConf))
		return nil, nil, fmt.Errorf("%s: %w", conf, err)
	}
	opts.NoSigs = true
	ns, err := server.NewServer(opts)
	if err != nil {
		os.Remove(l.Path(EmbeddedConf))
		return nil, nil, fmt.Errorf("start nats-server: %w", err)
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	sl := &serverLogger{l: logger, fatal: make(chan string, 1)}
	ns.SetLoggerV2(sl, opts.Debug, opts.Trace, false)
	go ns.Start()
	// Ready, or the server's own reason at once (the port is in use, say),
	// not a timeout.
	for deadline := time.Now().Add(embeddedReady); !ns.ReadyForConnections(100 * time.Millisecond); {
		var why string
		select {
		case why = <-sl.fatal:
		default:
			if time.Now().Before(deadline) {
				continue
			}
			why = fmt.Sprintf("not ready to accept clients on %s:%d within %v", opts.Host, opts.Port, embeddedReady)
		}
		ns.Shutdown()
		os.Remove(l.Path(EmbeddedConf))
		return nil, nil, fmt.Errorf("start nats-server: %s (another server on that address? give a free one with --listen, or 127.0.0.1:0 for any)", why)
	}
	if o.Listen != "" {
		// The port the server took, so that a reload keeps it and
		// ClientURL finds it; the file goes when the server stops.
		// It reloads that file at once, before any client, so that the
		// config it reports running (varz config_digest, which doctor
		// compares) is the file as it stays.
		addr := ns.Addr().(*net.TCPAddr)
		err := writeEmbeddedConf(l, opts.Host, strconv.Itoa(addr.Port))
		if mode, merr := l.Mode(); err == nil && merr == nil && mode == ModeOperator {
			// Not in operator mode: parsing a config with a full resolver
			// starts the resolver's goroutine, which nats-server's reload
			// then compares field by field while it runs (a data race in
			// v2.15.2); accounts change without reloads there anyway.
			// The file holds the port for a later reload all the same.
		} else if err == nil {
			err = ns.Reload()
		}
		if err != nil {
			ns.Shutdown()
			os.Remove(l.Path(EmbeddedConf))
			return nil, nil, fmt.Errorf("start nats-server: %w", err)
		}
		go func() {
			ns.WaitForShutdown()
			os.Remove(l.Path(EmbeddedConf))
		}()
	}
	return ns, opts, nil
}

// EmbeddedConf is the file 'serve --embedded --listen' runs its server from
// while it runs: nats.conf, included, with the address of --listen.
const EmbeddedConf = "embedded.conf"

// writeEmbeddedConf writes DIR/embedded.conf for the server StartEmbedded
// runs at host and port.
func writeEmbeddedConf(l Layout, host, port string) error {
	b := fmt.Appendf(nil, "# Written by 'authrelay serve --embedded --listen' for the server it runs, and\n"+
		"# removed when it stops. Do not edit: nats.conf is the configuration.\n"+
		"include %q\n"+
		// The same key as nats.conf's, so that this one wins: of two
		// different keys (listen, port) the server applies them in no
		// set order.
		"listen: %q\n", ServerConf, net.JoinHostPort(host, port))
	if err := WriteFileAtomic(l.Path(EmbeddedConf), b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", EmbeddedConf, err)
	}
	return nil
}

// serverLogger sends the embedded server's log lines to slog.
// Its Fatalf also hands the first fatal error to StartEmbedded, which is
// waiting for the server to start.
type serverLogger struct {
	l     *slog.Logger
	fatal chan string
}

func (s *serverLogger) Noticef(format string, v ...any) { s.l.Info(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Warnf(format string, v ...any)   { s.l.Warn(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	s.l.Error(msg)
	select {
	case s.fatal <- msg:
	default:
	}
}
func (s *serverLogger) Errorf(format string, v ...any) { s.l.Error(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Debugf(format string, v ...any) { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Tracef(format string, v ...any) { s.l.Debug(fmt.Sprintf(format, v...)) }
