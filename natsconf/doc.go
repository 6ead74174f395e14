// Package natsconf reads an existing nats.conf into the users, accounts
// and permissions authrelay can import, and plans and applies the import
// over a snapshot of the store.
//
// Read takes each user's values (name, password, permissions, connection
// types) from nats-server's own option parser, so that the server's
// aliases and defaults hold, and walks the config's token tree for what
// the parser does not tell: where an entry is, the settings import does
// not understand or authrelay cannot express, and an account's limits.
// Plan is pure: given what the directory holds (a Snapshot) it decides
// what happens to each user and account, and why, without changing
// anything. Apply carries a plan out against a Target (the store).
//
// natsconf imports accounts, store and nats-server; it never prints.
package natsconf
