package deploy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/authrelay/authrelay/cluster"
	"github.com/authrelay/authrelay/store"
)

// TestOpenStoreClusterUnreachable: a directory in cluster mode whose server
// does not run opens for reading, says so once, and refuses every write
// with the no-quorum error, changing nothing; the same directory without
// cluster.json writes as a single node.
func TestOpenStoreClusterUnreachable(t *testing.T) {
	l := initDir(t)
	// A loopback port with nothing listening on it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "nats://" + ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string {
		if k == "NATS_URL" {
			return url
		}
		return ""
	}
	add := func(db *store.DB, name string) error {
		return db.Admin(t.Context(), "test", "account add", func(ctx context.Context) (string, error) {
			return fmt.Sprintf(`{"account":%q}`, name), db.AddAccount(ctx, name)
		})
	}

	if err := l.WriteCluster(Cluster{Name: DefaultClusterName, Stream: DefaultClusterStream, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	var warned []string
	db, err := l.OpenStore(t.Context(), StoreOptions{Getenv: getenv, Warn: func(m string) { warned = append(warned, m) }})
	if err != nil {
		t.Fatalf("open a cluster directory with its server down: %v", err)
	}
	if len(warned) != 1 || !strings.Contains(warned[0], "reading this node's copy") || !strings.Contains(warned[0], "127.0.0.1") {
		t.Errorf("warnings = %q, want one that names the server and says reads come from the copy", warned)
	}
	before, err := db.StateDigest(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	list, err := db.AccountList(t.Context())
	if err != nil || len(list) != 1 || list[0].Name != "APP" {
		t.Fatalf("read accounts from the copy: %v, %v", list, err)
	}
	err = add(db, "ORDERS")
	if !errors.Is(err, cluster.ErrNoQuorum) || !strings.Contains(err.Error(), "the change is not made") {
		t.Fatalf("write with the log unreachable: %v, want cluster.ErrNoQuorum saying the change is not made", err)
	}
	if err := db.AddAccount(t.Context(), "DIRECT"); !errors.Is(err, store.ErrClusterWrite) {
		t.Fatalf("write outside an admin change: %v, want store.ErrClusterWrite", err)
	}
	after, err := db.StateDigest(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if before != after {
		t.Error("the refused writes changed the copy")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// The positive control: without cluster.json the same write works.
	if err := os.Remove(l.Path(ClusterFile)); err != nil {
		t.Fatal(err)
	}
	db, err = l.OpenStore(t.Context(), StoreOptions{Getenv: getenv, Warn: func(m string) { t.Errorf("single node warned: %s", m) }})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := add(db, "ORDERS"); err != nil {
		t.Fatalf("single-node write: %v", err)
	}
}
