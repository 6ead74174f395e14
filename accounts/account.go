package accounts

import (
	"fmt"
	"strings"
)

// Account is an application account that authrelay places users in.
type Account struct {
	Name   string        `json:"name"`
	Limits AccountLimits `json:"limits"`
	// JetStream enables JetStream for the account (needed by MQTT
	// clients), within the server's own JetStream limits.
	JetStream bool `json:"jetstream"`
	// JetStreamLimits are the account's own JetStream limits; none unless
	// JetStream is enabled (Validate).
	JetStreamLimits JetStreamLimits `json:"jetstream_limits"`
}

// AccountLimits are limits nats-server enforces on every connection of an
// account (config mode: the account's limits block). Zero means no limit.
type AccountLimits struct {
	MaxConnections int64 `json:"max_connections,omitempty"`
	MaxSubs        int64 `json:"max_subs,omitempty"`
	MaxPayload     int64 `json:"max_payload,omitempty"`
}

// IsZero reports whether no limit is set.
func (l AccountLimits) IsZero() bool { return l == AccountLimits{} }

// String returns the limits that are set, as "max_connections=100
// max_payload=65536", or "none".
func (l AccountLimits) String() string {
	var parts []string
	if l.MaxConnections > 0 {
		parts = append(parts, fmt.Sprintf("max_connections=%d", l.MaxConnections))
	}
	if l.MaxSubs > 0 {
		parts = append(parts, fmt.Sprintf("max_subs=%d", l.MaxSubs))
	}
	if l.MaxPayload > 0 {
		parts = append(parts, fmt.Sprintf("max_payload=%d", l.MaxPayload))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

// Validate reports a negative or out-of-range limit.
func (l AccountLimits) Validate() error {
	for _, v := range []struct {
		name string
		n    int64
	}{{"max connections", l.MaxConnections}, {"max subs", l.MaxSubs}, {"max payload", l.MaxPayload}} {
		if v.n < 0 || v.n > 1<<31-1 {
			return fmt.Errorf("%s %d: give a number from 0 (no limit) to %d", v.name, v.n, 1<<31-1)
		}
	}
	return nil
}

// Validate reports the first problem with the account, or nil.
func (a Account) Validate() error {
	if err := ValidateAccount(a.Name); err != nil {
		return err
	}
	if err := a.Limits.Validate(); err != nil {
		return err
	}
	return a.validateJetStream()
}
