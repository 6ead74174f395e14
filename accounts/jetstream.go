package accounts

import (
	"fmt"
	"strings"
)

// JetStreamLimits are the JetStream limits of an account with JetStream
// enabled (accounts.conf: the account's jetstream block, which nats-server
// parses in parseJetStreamForAccount). Zero means no limit of the account's
// own: the server's limits (its jetstream block, or what the host has) still
// hold.
type JetStreamLimits struct {
	// MaxMemory is the most bytes the account's memory streams hold
	// (max_mem).
	MaxMemory int64 `json:"max_memory,omitempty"`
	// MaxStorage is the most bytes the account's file streams hold
	// (max_file).
	MaxStorage int64 `json:"max_storage,omitempty"`
	// MaxStreams is the most streams, KV buckets included, in the account.
	MaxStreams int64 `json:"max_streams,omitempty"`
	// MaxConsumers is the most consumers in the account (MQTT sessions
	// and subscriptions each make some).
	MaxConsumers int64 `json:"max_consumers,omitempty"`
}

// IsZero reports whether no JetStream limit is set.
func (l JetStreamLimits) IsZero() bool { return l == JetStreamLimits{} }

// fields returns the limits with their accounts.conf keys and flag names,
// in the order they are rendered.
func (l JetStreamLimits) fields() []struct {
	key, flag string
	n         int64
	max       int64
} {
	return []struct {
		key, flag string
		n         int64
		max       int64
	}{
		{"max_mem", "--js-max-memory", l.MaxMemory, 1<<63 - 1},
		{"max_file", "--js-max-storage", l.MaxStorage, 1<<63 - 1},
		{"max_streams", "--js-max-streams", l.MaxStreams, 1<<31 - 1},
		{"max_consumers", "--js-max-consumers", l.MaxConsumers, 1<<31 - 1},
	}
}

// Conf returns the limits that are set as accounts.conf fields, such as
// "max_mem: 1048576, max_streams: 10", or "" when none is.
func (l JetStreamLimits) Conf() string {
	var parts []string
	for _, f := range l.fields() {
		if f.n > 0 {
			parts = append(parts, fmt.Sprintf("%s: %d", f.key, f.n))
		}
	}
	return strings.Join(parts, ", ")
}

// String returns the limits that are set, as "js_max_memory=1048576
// js_max_streams=10", or "none".
func (l JetStreamLimits) String() string {
	var parts []string
	for _, f := range l.fields() {
		if f.n > 0 {
			parts = append(parts, fmt.Sprintf("js_%s=%d", strings.ReplaceAll(strings.TrimPrefix(f.flag, "--js-"), "-", "_"), f.n))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

// Validate reports a negative or out-of-range limit, naming its flag.
func (l JetStreamLimits) Validate() error {
	for _, f := range l.fields() {
		if f.n < 0 || f.n > f.max {
			return fmt.Errorf("%s %d: give a number from 0 (no limit) to %d", f.flag, f.n, f.max)
		}
	}
	return nil
}

// firstFlag returns the flag of the first limit that is set, or "".
func (l JetStreamLimits) firstFlag() string {
	for _, f := range l.fields() {
		if f.n > 0 {
			return f.flag
		}
	}
	return ""
}

// validateJetStream refuses JetStream limits on an account without
// JetStream: the server would ignore them, and an operator who gave one
// meant the account to have JetStream, which authrelay does not guess.
func (a Account) validateJetStream() error {
	if err := a.JetStreamLimits.Validate(); err != nil {
		return err
	}
	if !a.JetStream && !a.JetStreamLimits.IsZero() {
		return fmt.Errorf("account %s: %s is a JetStream limit, and JetStream is not enabled in the account: add --jetstream", a.Name, a.JetStreamLimits.firstFlag())
	}
	return nil
}

// JetStreamText says whether the account has JetStream, with its limits, as
// "enabled js_max_streams=10", or off when it has none.
func (a Account) JetStreamText(off string) string {
	switch {
	case !a.JetStream:
		return off
	case a.JetStreamLimits.IsZero():
		return "enabled"
	}
	return "enabled " + a.JetStreamLimits.String()
}
