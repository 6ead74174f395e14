// Package cluster replicates authrelay's identity store across the relays
// of a NATS cluster, on JetStream: authrelay writes no consensus or
// replication protocol of its own.
//
// # The log
//
// In cluster mode the source of truth is the cluster log: one JetStream
// stream (DefaultStream, one subject, DefaultSubject) in the AUTH account,
// file storage, DefaultReplicas replicas, deletes and purges denied. Each
// entry is one committed admin change, in the order the stream leader
// accepted it. Every relay keeps its own SQLite copy (package store),
// applies the log to it in order, and answers logins from that copy only:
// a login never waits on JetStream, and logins go on from the copy while
// JetStream has lost quorum. Each copy records, in the same transaction as
// the rows, the number of the last entry it holds (store.DB.AppliedSeq).
//
// # Changes are rows, not commands
//
// An entry holds the rows a change left, not the command that made it: for
// each row it touched, the row's values after the change (column names and
// typed values; blobs as base64) or, for a row that is gone, a delete by
// key. So no password is ever in the log (only its hash, as in the
// database), and applying needs no determinism from the code that made the
// change (times, random salts, policy checks happen once, on the writer).
//
//   - Capture (store): within store.DB.Admin, through which every admin
//     command goes, TEMP triggers on each replicated table record the key
//     of every row touched, in order. Which tables are replicated, with
//     their keys, and which are local, is one list in the store, and a test
//     fails when a migration adds a table the list does not decide.
//     Replicated: accounts, roles, settings (the hash policy), users,
//     user_roles, password_graces, and the admin rows of the audit trail
//     (appended without their id, which is local). Not replicated: the
//     tables the triggers derive (the change feed user_changes, the user
//     versions, the generation), because every copy's own triggers fill
//     them when it applies a change, which is what makes each relay close a
//     changed user's connections and drop its cached logins; and, this
//     round, lockouts, known addresses, login audit rows and the write
//     probe.
//   - Begin (store): Admin first asks the log for its last entry
//     (Log.Check, one stream info request) and catches up to it, so that a
//     command on any node sees every change the log held when it began,
//     and fails for a stale reason on no node. Check also decides whether
//     the log can take a change now, without taking the database's write
//     lock. It asks each of the stream's servers, by name, whether this
//     node's server reaches it (an account-scoped server ping, answered
//     through the routes, which close as soon as a server dies, where
//     JetStream's raft view of it lags by seconds): with fewer than a
//     majority reachable, Admin fails at once (within half a second) with
//     ErrNoQuorum, the change certainly not made. With a majority
//     reachable, a stream leader that hears from a majority of its
//     replicas takes the change; no leader (its server died: nats-server
//     calls an election 4 to 9 s after its last heartbeat), or none that
//     answers, means an election is under way, and Check waits for it,
//     asking again every 200 ms, up to Config.ElectionWait (15 s): writes
//     go on through the loss of one server of three. The servers' names
//     come from the stream's info, or, for a new process (an admin
//     command) whose first stream info goes unanswered, from the relays
//     (Log.AnswerPeers); with neither, the ping goes to all servers at
//     once, which nats-server answers with one server only after a config
//     reload: such a command fails as without a quorum rather than wait.
//   - Open reads the stream's info and updates the stream only if its
//     settings differ, and reading the log makes a consumer (which
//     JetStream's meta leader does): both wait for an election the same
//     way; a node that
//     joins is caught up only once the log holds the first node's
//     snapshot (node), and an admin change on the first node before its
//     relay ever ran writes the snapshot first (store).
//   - Commit (store): before Admin commits, it reads the touched rows in
//     its transaction, encodes them as one entry, and appends it with
//     JetStream's expected-last-sequence check set to the copy's position
//     (Log.Append). Only when the stream leader has stored the entry does
//     the transaction commit, with the entry's number as the new position:
//     a write returns once JetStream has it. If another node's entry came
//     first, or one was applied here while the change ran, the check fails
//     (store.ErrBehind): Admin rolls back, catches up (Log.CatchUp) and runs
//     the change again on the newer copy, so that of two "user add alice"
//     on two nodes one succeeds and the other gets store.ErrExists, the
//     error a single node gives. If the append gets no answer within the
//     timeout, Admin rolls back and fails with ErrNoQuorum; the error says
//     the change is not confirmed rather than not made, because a leader
//     that lost its quorum during the append keeps the entry and commits
//     it if its peers come back (every node then applies it). The check at
//     the beginning leaves this only for a quorum lost in the milliseconds
//     between the two requests.
//   - Apply (store.DB.Apply): one transaction per entry, entries strictly
//     in order (one already applied is skipped, a gap is refused), rows
//     upserted (INSERT … ON CONFLICT DO UPDATE, so that the UPDATE triggers
//     fire as they did on the writer) or deleted, foreign keys deferred to
//     the commit. Log.Follow runs it for each entry as it arrives; a node's
//     own entries are already applied and skipped.
//   - Snapshot (Log.Bootstrap): an existing single-node database becomes
//     the first node by appending every replicated row to an empty log, in
//     entries below store.MaxEntrySize, parents first; a node that joins
//     starts from an empty database and applies the log from its start
//     (Apply refuses the log's first entry on a copy with rows of its
//     own, which would stay in it alone).
//
// Writes to replicated tables outside Admin fail in cluster mode
// (store.ErrClusterWrite) rather than change one copy alone. Two kinds of
// write stay local because every node makes the same one: ending a password
// grace at its time, and pruning. The rehash of a password at login is an
// admin change, made off the login's path: the relay queues the new hash
// (bounded, one per user) and store.DB.RehashLoop stores it, conditional on
// the stored hash and policy being those the login used, as a change
// marked as a rehash, which every node applies as one (no change feed row:
// connections and cached logins stay). The hash policy follows the log:
// applying a settings row, and beginning an admin change, reread it.
//
// # Large changes
//
// A change larger than store.MaxEntrySize (an import of thousands of
// users in one admin change) goes into the log in parts, as one JetStream
// atomic batch (the stream allows them): the log holds all the parts,
// consecutive, or none, and a copy applies them in one transaction once the
// last has arrived. A batch holds at most 1,000 parts (nats-server's
// default), about 500 MiB of rows.
//
// # Limits of this step
//
// While Append waits on JetStream the change holds the copy's write lock,
// which the failed-login counts of that node wait for: a few milliseconds
// normally, up to Config.Timeout if the quorum goes during the append. An
// entry that a copy cannot apply (from a newer authrelay) stops that copy
// at it, loudly, rather than let it skip a change: Follow logs and tries
// again, and Log.Behind shows it. Lockouts, known addresses and login audit
// rows are per node. A write in flight when the stream's leader dies gets
// no answer: it fails after Config.Timeout as not confirmed (the new leader
// may hold it), rather than be sent again, which the leader could store
// twice. A command that starts while the stream is silent, with no relay
// to name its servers, on a server that has reloaded its config, cannot
// tell an election from a lost quorum and fails (see Begin). A snapshot
// goes in as one atomic batch up to 1,000 entries (about 500 MiB), entry
// by entry beyond: a node that joins then may be ready with part of it,
// and has the rest within moments. An empty copy's admin change on
// an empty log becomes its first entry: on a node that joins before the
// first node's relay has run, that change makes the first node's snapshot
// fail. A migration that changes
// replicated rows (as 0007 did) runs on each node by itself, and must give
// the same rows everywhere. The log trusts whoever can
// publish on its subject: only relays may hold users in the AUTH account.
//
// deploy.Layout.OpenStore attaches the log when the directory has
// cluster.json (the one place the store mode is decided), and node.Run
// catches up before the first login and follows the log after it.
package cluster
