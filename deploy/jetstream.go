package deploy

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// JetStreamDir is the directory, under DIR, where the server keeps its
// JetStream store (streams, KV buckets, MQTT sessions of the accounts with
// --jetstream): nats.conf's store_dir is DIR, and nats-server adds this
// name to it itself.
const JetStreamDir = "jetstream"

// maxServerName is the longest server_name init writes or takes.
const maxServerName = 64

// jetStreamConf is what nats.conf needs for JetStream: the server's name
// (which JetStream and MQTT require, and which tells the nodes of a cluster
// apart), the store directory, and MQTT's listen address when there is one.
type jetStreamConf struct {
	ServerName string
	StoreDir   string
	MQTTListen string
}

// DefaultServerName returns the server_name init writes when none is given:
// the host's name and the client port of listen, such as "web-1-4222", so
// that several servers on one host, and servers on several hosts, get
// distinct names. It keeps only what nats-server and JetStream's peer
// names take (letters, digits, '-' and '_').
func DefaultServerName(listen string) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "nats"
	}
	host, _, _ = strings.Cut(host, ".") // the host, not its domain
	_, port, _ := net.SplitHostPort(listen)
	name := sanitiseServerName(host)
	if port != "" {
		name = fmt.Sprintf("%s-%s", clip(name, maxServerName-len(port)-1), port)
	}
	return name
}

func sanitiseServerName(s string) string {
	var b strings.Builder
	for _, r := range s {
		if isServerNameRune(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	if out := strings.Trim(b.String(), "-"); out != "" {
		return out
	}
	return "nats"
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func isServerNameRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_'
}

// ValidateServerName checks a --server-name, with an ErrInvalid error.
func ValidateServerName(name string) error {
	if name == "" || len(name) > maxServerName || strings.IndexFunc(name, func(r rune) bool { return !isServerNameRune(r) }) >= 0 {
		return invalidf("--server-name %q: give 1 to %d letters, digits, '-' or '_', distinct for every server of a cluster, such as %s", clip(name, maxServerName), maxServerName, DefaultServerName(DefaultListen))
	}
	return nil
}

// newJetStreamConf fills in the defaults of nats.conf's JetStream part for
// a file at confPath: store_dir DIR (an absolute path, so that the server
// finds it whatever its working directory; the store is DIR/jetstream) and,
// when name is
// empty, DefaultServerName.
func newJetStreamConf(name, listen, confPath, mqtt string) (jetStreamConf, error) {
	if name == "" {
		name = DefaultServerName(listen)
	} else if err := ValidateServerName(name); err != nil {
		return jetStreamConf{}, err
	}
	if mqtt != "" {
		if err := ValidateListen(mqtt, false); err != nil {
			return jetStreamConf{}, invalidf("%s", strings.Replace(err.Error(), "--listen", "--mqtt-listen", 1))
		}
	}
	abs, err := filepath.Abs(confPath)
	if err != nil {
		return jetStreamConf{}, fmt.Errorf("store directory: %w", err)
	}
	return jetStreamConf{ServerName: name, StoreDir: filepath.Dir(abs), MQTTListen: mqtt}, nil
}
