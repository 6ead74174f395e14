package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// ClusterFile is the file that puts a directory in cluster mode: without
// it the directory is a single node (SQLite only, no JetStream needed);
// with it the identity store's source of truth is the cluster log in
// JetStream, and the database is this node's copy of it. It holds no
// secret (mode 0644).
const ClusterFile = "cluster.json"

// Defaults of a Cluster's fields.
const (
	// DefaultClusterName is the NATS cluster name of a new cluster.
	DefaultClusterName = "authrelay"
	// DefaultClusterStream is the JetStream stream of the cluster log, in
	// the AUTH account.
	DefaultClusterStream = "AUTHRELAY"
	// DefaultClusterReplicas is how many servers keep the log.
	DefaultClusterReplicas = 3
)

// Cluster is the content of cluster.json: what a node of a cluster needs
// to find the cluster log. Routes and listen addresses live in nats.conf,
// credentials in secrets.json.
type Cluster struct {
	// Name is the NATS cluster name (nats.conf's cluster.name).
	Name string `json:"name"`
	// Stream is the JetStream stream of the cluster log.
	Stream string `json:"stream"`
	// Replicas is how many servers keep the log (1 to 5).
	Replicas int `json:"replicas"`
}

// Check returns an ErrInvalid error naming the first field that is wrong.
func (c Cluster) Check() error {
	switch {
	case c.Name == "" || strings.ContainsAny(c.Name, " \t\r\n.*>"):
		return invalidf("cluster name %q: give a name without spaces, dots or wildcards, such as %s", c.Name, DefaultClusterName)
	case c.Stream == "" || strings.ContainsAny(c.Stream, " \t\r\n.*>/\\"):
		return invalidf("cluster stream %q: give a JetStream stream name without spaces, dots, slashes or wildcards, such as %s", c.Stream, DefaultClusterStream)
	case c.Replicas < 1 || c.Replicas > 5:
		return invalidf("cluster replicas %d: JetStream keeps 1 to 5 replicas; 3 survives the loss of one server", c.Replicas)
	}
	return nil
}

// Cluster reads l's cluster.json. ok is false, with no error, when the
// directory is a single node (no cluster.json).
func (l Layout) Cluster() (c Cluster, ok bool, err error) {
	b, err := os.ReadFile(l.Path(ClusterFile))
	if errors.Is(err, fs.ErrNotExist) {
		return Cluster{}, false, nil
	}
	if err != nil {
		return Cluster{}, false, fmt.Errorf("read %s: %w", ClusterFile, err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return Cluster{}, false, fmt.Errorf("read %s: %w: fix the file or restore it from another node of the cluster", l.Path(ClusterFile), err)
	}
	if err := c.Check(); err != nil {
		return Cluster{}, false, fmt.Errorf("read %s: %w", l.Path(ClusterFile), err)
	}
	return c, true, nil
}

// WriteCluster writes c as l's cluster.json, atomically.
func (l Layout) WriteCluster(c Cluster) error {
	if err := c.Check(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(l.Path(ClusterFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", ClusterFile, err)
	}
	return nil
}
