package deploy

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/authrelay/authrelay/internal/loopback"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestJetStreamEncryptionKeyFromEnvironment: the encryption at rest that
// SECURITY.md gives a cluster node — cipher and key in nats.conf's
// jetstream block, the key a reference to nats-server's environment —
// keeps what the AUTH account's streams hold (the cluster log: password
// hashes) unreadable on disk, with no key in nats.conf. The same server
// without the cipher is the positive control: the marker is found there.
func TestJetStreamEncryptionKeyFromEnvironment(t *testing.T) {
	const marker = "argon2id-marker-7f3a9c"
	t.Setenv("AUTHRELAY_JS_KEY", "b3f1c2d4e5a6978812345678abcdef00b3f1c2d4e5a6978812345678abcdef00")
	for _, encrypted := range []bool{false, true} {
		l := Layout{Dir: filepath.Join(t.TempDir(), "data")}
		if err := Init(t.Context(), l, InitOptions{Accounts: []string{"APP"}, Listen: loopback.Addr(t), BcryptCost: testCost}); err != nil {
			t.Fatal(err)
		}
		conf, err := os.ReadFile(l.Path(ServerConf))
		if err != nil {
			t.Fatal(err)
		}
		// JetStream in the AUTH account, as a cluster node has it.
		conf, err = enableAuthJetStream(conf)
		if err != nil {
			t.Fatal(err)
		}
		if encrypted {
			text := strings.Replace(string(conf), "jetstream {\n", "jetstream {\n  cipher: chachapoly\n  key: $AUTHRELAY_JS_KEY\n", 1)
			if text == string(conf) {
				t.Fatal("no jetstream block in nats.conf")
			}
			conf = []byte(text)
		}
		if bytes.Contains(conf, []byte("b3f1c2d4")) {
			t.Fatal("the key is in nats.conf")
		}
		if err := os.WriteFile(l.Path(ServerConf), conf, 0o644); err != nil {
			t.Fatal(err)
		}
		opts, err := server.ProcessConfigFile(l.Path(ServerConf))
		if err != nil {
			t.Fatal(err)
		}
		opts.NoLog, opts.NoSigs = true, true
		ns, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		go ns.Start()
		if !ns.ReadyForConnections(10 * time.Second) {
			t.Fatal("server not ready")
		}
		s, err := l.LoadSecrets()
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(ns.ClientURL(), nats.UserInfo(s.RelayUser, s.RelayPassword))
		if err != nil {
			t.Fatal(err)
		}
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "LOG", Subjects: []string{"log"}, Storage: jetstream.FileStorage}); err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(t.Context(), "log", []byte(marker)); err != nil {
			t.Fatal(err)
		}
		nc.Close()
		ns.Shutdown()
		ns.WaitForShutdown()

		found := false
		files := 0
		err = filepath.WalkDir(l.Path("jetstream"), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			files++
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			found = found || bytes.Contains(b, []byte(marker))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if files == 0 {
			t.Fatalf("encrypted %v: no files under %s", encrypted, l.Path("jetstream"))
		}
		if found == encrypted {
			t.Errorf("encrypted %v: the stored message readable on disk: %v", encrypted, found)
		}
	}
}
