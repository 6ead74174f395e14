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
//     changed user's connections and drop its cached logins; the write
//     probe; and what logins change (lockouts, known addresses, login
//     audit rows), which travel as node events, below.
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
// # Node events: lockouts and the login audit trail
//
// What a login changes (a failed-login count, a lock, a known address, a
// login row of the audit trail) must reach every node, but must never make
// a login wait on JetStream, nor stop when JetStream has lost quorum. So it
// is not in the log, whose appends wait for the leader, in order, with the
// copy's write lock held: each node sends it as node events (Events), on
// two JetStream streams of their own in the AUTH account beside the log
// (deploy names them: the log's stream with _LOCKOUTS and _AUDIT, the
// log's replicas), ordered only by the stream leader that stores them.
//
//   - Send (Events.Publish): the relay's guard and audit writer hand each
//     event to a bounded buffer and go on; a goroutine sends the buffer in
//     messages of up to 512 events, each with a message id so that a retry
//     after a lost ack is dropped by JetStream, and tries a message again,
//     pausing up to two seconds, while JetStream cannot take it. An event
//     that finds the buffer full (65,536 events) is dropped, counted
//     (EventStats.Lost, authrelay_cluster_events_lost_total) and logged,
//     and /readyz says so for 30 seconds: none is lost silently.
//   - Apply (Events.Follow): each node reads each stream in order, from
//     the position it keeps in its database (the table event_positions),
//     and applies messages in one transaction with the new position, so
//     that a message is applied once however often it is delivered, a
//     restarted node resumes after the last it applied, and a node that
//     joins reads what the stream holds. A node skips its own events (its
//     copy has them already), except unlocks.
//   - Lockouts replicate the inputs of the state machine, not its state
//     (store.Lockouts.ApplyRemote): a failed login (the username and
//     address keys it counted under, and whether it counts against the
//     username), a success that cleared a pair's failures or made an
//     address known, a lock, and an admin's unlock. Every node applies the
//     others' failures with the same rules and its own policy, at the time
//     they happened (never later than its own now), so a failure is
//     counted once on every node whichever relay saw it: guesses spread
//     over three nodes lock as if made on one, and a lock set on one node
//     refuses on all within milliseconds. A lock event is merged as the
//     failures held in memory are written back (the later end, the larger
//     count of locks, capped at the node's longest lockout), so nodes that
//     saw the events in another order end with the same lock. An unlock
//     ('user unlock') is sent with Events.Send, which waits for JetStream's
//     ack, before the admin change commits: without quorum it fails at
//     once, like every admin write, and nothing is unlocked anywhere. The
//     stream keeps 25 hours (the day for which a lockout's escalation is
//     remembered, store.DB.Maintain), and at most 1 GiB.
//   - Login audit rows: each batch the audit writer wrote
//     (store.AuditOptions.OnWrite) is sent, a row an event; the other nodes
//     insert the rows marked with their node (the NATS server name, the
//     audit column node), so that 'audit' and 'audit --follow' show every
//     node's logins on any node. Admin and kick rows come through the log
//     and are never sent. The stream keeps the audit retention; each node
//     prunes its own trail as before.
//
// While JetStream has no quorum, each relay counts the failures it
// answers by itself, as a single node does, and sends them once JetStream
// is back: until then a guesser gets at most a threshold per relay. The
// bound Reserve puts on concurrent verifications of one key holds per
// relay, as for relays sharing one database: a burst that reaches three
// relays at the same instant, before any failure of it is counted, has up
// to three times as many verified. A node
// that joins, or returns after longer than a stream keeps, misses the
// older events (an escalation older than a day, an address known for
// longer). A relay that starts answers logins once its copy of the log
// has caught up, without waiting for the events it missed while stopped
// (a node back after a day would replay a day of them): it applies them
// right after, while it answers. The streams trust whoever can publish on
// their subjects, as the log does.
//
// # Limits of this step
//
// While Append waits on JetStream the change holds the copy's write lock,
// which the failed-login counts of that node wait for: a few milliseconds
// normally, up to Config.Timeout if the quorum goes during the append. An
// entry that a copy cannot apply (from a newer authrelay) stops that copy
// at it, loudly, rather than let it skip a change: Follow logs and tries
// again, and Log.Behind shows it. A write in flight when the stream's leader dies gets
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
