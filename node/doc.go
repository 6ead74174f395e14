// Package node runs one authrelay relay node from an authrelay directory:
// Run takes the serve lock, opens the user database and checks its hash
// policy, starts the audit writer, the lockout guard and the relay (and,
// with Config.Embedded, nats-server in-process from the directory's
// nats.conf, initialising an empty directory first), serves the metrics
// and health endpoints, runs the store's maintenance loops, and when its
// context ends drains in-flight logins and writes their audit rows (for up
// to 10 s) before it returns.
//
// It is what 'authrelay serve' runs, as a library rather than a command:
// cmd/authrelay parses and checks the flags, the environment and
// authrelay.conf, resolves the server URL, owns the signals and prints the
// welcome text; node takes plain values (Config) and never prints. Its
// errors and warnings name the serve flag of the Config field at fault, as
// that is what an operator changes.
//
// It is a package of its own because this is where a node's store mode is
// decided: today the single SQLite file of the directory, next (cluster
// mode) a JetStream-replicated copy of it. Tests outside cmd, such as the
// cluster tests, must be able to start several nodes in one process, each
// on its own directory, and stop them by cancelling their contexts.
//
// node may import accounts, store, relay, deploy and metrics; never cmd.
package node
