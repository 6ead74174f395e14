-- Cluster mode (see the cluster package): the position of this node's copy
-- in the cluster log, an ordered log of committed changes kept in JetStream.
-- applied is the sequence of the last entry this database holds: every
-- entry up to it, and none after it. It is 0 for a single node and for a
-- node that has applied nothing. It is local: each node has its own copy
-- and its own position, and the log never carries this row.
CREATE TABLE cluster_log (
    id      INTEGER NOT NULL PRIMARY KEY CHECK (id = 0),
    applied INTEGER NOT NULL CHECK (applied >= 0)
) STRICT;
INSERT INTO cluster_log (id, applied) VALUES (0, 0);
