// Package deploy owns an authrelay directory: the files that make it up
// (Layout), secrets.json with its mode check (Secrets), rendering nats.conf
// and accounts.conf for a stock nats-server, the account and user names
// that config reserves, creating a directory (Init), reading what the
// server will enforce from its nats.conf (ReservedAccounts, MaxPayload),
// running that server in-process (StartEmbedded), reaching the servers
// (NATSTarget, nats CLI contexts, ConnectAdmin, Reload, Sessions), serve's
// settings (ApplySettings) and restoring a backup into the directory
// (Restore).
//
// A directory is in config mode or operator mode (decentralized JWT,
// 'init --operator'), decided once by the directory (Mode: operator.json);
// what differs between them is answered here from that decision: the
// relay's keys, placement and logins (Identity), the server config Init
// writes, the reserved accounts, the server check (CheckServer), and how
// account changes reach the server (WriteAccountsConf, ReloadAt). See the
// comment at the top of operator.go.
//
// It never prints and never exits: errors say what is wrong and what to do.
// Errors about an argument rather than the directory, and about serve's
// settings, match ErrInvalid.
// deploy may import accounts, store, nats-server and nats.go; never relay
// or cmd.
package deploy
