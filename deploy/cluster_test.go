package deploy

import (
	"errors"
	"os"
	"testing"
)

func TestClusterFile(t *testing.T) {
	l := Layout{Dir: t.TempDir()}
	if _, ok, err := l.Cluster(); ok || err != nil {
		t.Fatalf("Cluster of a single node = %v, %v; want not ok, no error", ok, err)
	}
	want := Cluster{Name: DefaultClusterName, Stream: DefaultClusterStream, Replicas: DefaultClusterReplicas}
	if err := l.WriteCluster(want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := l.Cluster()
	if err != nil || !ok || got != want {
		t.Fatalf("Cluster = %+v, %v, %v; want %+v", got, ok, err, want)
	}
	for _, bad := range []Cluster{
		{Name: "a b", Stream: "S", Replicas: 3},
		{Name: "c", Stream: "S.x", Replicas: 3},
		{Name: "c", Stream: "S", Replicas: 0},
		{Name: "c", Stream: "S", Replicas: 6},
	} {
		if err := l.WriteCluster(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("WriteCluster(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
	if got, _, _ := l.Cluster(); got != want {
		t.Errorf("a refused WriteCluster changed the file: %+v", got)
	}
	if err := os.WriteFile(l.Path(ClusterFile), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Cluster(); err == nil {
		t.Error("Cluster read a broken file without an error")
	}
}
