-- Cluster mode's node events (see the cluster package: lockout inputs and
-- login audit rows, each node's sent to the others on a JetStream stream of
-- their own, outside the ordered cluster log).
--
-- node is the NATS server name of the cluster node a login audit row came
-- from, for the rows another node sent; '' for the rows this node wrote
-- itself (every row of a single node, and every admin row, which comes
-- through the cluster log).
ALTER TABLE audit ADD COLUMN node TEXT NOT NULL DEFAULT '';

-- How far this copy has applied each events stream: seq is the stream
-- sequence of the last message applied, written in the same transaction
-- as what the message changed, so that a message is applied once however
-- often it is delivered, and a restarted node resumes after it.
CREATE TABLE event_positions (
    stream TEXT NOT NULL PRIMARY KEY,
    seq    INTEGER NOT NULL CHECK (seq >= 0)
) STRICT, WITHOUT ROWID;
