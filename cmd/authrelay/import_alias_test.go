package main

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// importAliasesConf is natsconf's fixture of the permission forms
// nats-server reads with its aliases (pub/sub, import/export, allow/deny in
// any case, single subjects); its subjects are those probe tries.
var importAliasesConf = filepath.Join("..", "..", "natsconf", "testdata", "aliases.conf")

// TestImportAliasesKeepWhatNatsServerEnforces: a user written with any of
// nats-server's permission aliases may publish and subscribe through
// authrelay, after import, to exactly the subjects a stock nats-server
// running the original file lets it use.
func TestImportAliasesKeepWhatNatsServerEnforces(t *testing.T) {
	opts, err := server.ProcessConfigFile(importAliasesConf)
	if err != nil {
		t.Fatalf("nats-server rejects %s: %v", importAliasesConf, err)
	}
	opts.Host, opts.Port, opts.NoLog, opts.NoSigs = "127.0.0.1", server.RANDOM_PORT, true, true
	stock, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go stock.Start()
	if !stock.ReadyForConnections(10 * time.Second) {
		t.Fatal("stock nats-server not ready")
	}
	t.Cleanup(func() {
		stock.Shutdown()
		stock.WaitForShutdown()
	})

	s := serveEmbedded(t, true)
	rep := decodeImport(t, mustImport(t, 0, "import", importAliasesConf, "--dir", s.dir, "--json"))
	if rep.Summary.UsersImported != len(opts.Users) || len(rep.Users) != len(opts.Users) {
		t.Fatalf("import added %d of the %d users nats-server reads: %+v", rep.Summary.UsersImported, len(opts.Users), rep.Users)
	}
	for _, r := range rep.Users {
		t.Run(r.Name, func(t *testing.T) {
			password := r.Name + "-pass"
			wantPub, wantSub := probe(t, stock.ClientURL(), r.Name, password)
			gotPub, gotSub := probe(t, s.url, r.Name, password)
			allowed := 0
			for _, subj := range probeSubjects {
				if gotPub[subj] != wantPub[subj] {
					t.Errorf("publish to %s: allowed %v through authrelay, %v by nats-server with the original file", subj, gotPub[subj], wantPub[subj])
				}
				if gotSub[subj] != wantSub[subj] {
					t.Errorf("subscribe to %s: allowed %v through authrelay, %v by nats-server with the original file", subj, gotSub[subj], wantSub[subj])
				}
				if wantPub[subj] {
					allowed++
				}
				if wantSub[subj] {
					allowed++
				}
			}
			// A user the stock server lets do nothing would make the
			// comparison a test of refusals only: each user of the
			// fixture may use something.
			if allowed == 0 {
				t.Errorf("the stock server lets %s use none of %q: the fixture does not test an allow", r.Name, probeSubjects)
			}
		})
	}
}
