package node

import (
	"fmt"
	"log/slog"

	"github.com/authrelay/authrelay/store"
)

// maxHashMemoryInFlight is the most memory, in KiB, that one relay's hash
// workers may hold at once at the hash policy: 4 GiB.
const maxHashMemoryInFlight = 4 << 20

// checkServePolicy reports why a node must not run with hash policy p and
// workers concurrent verifications: p is outside the policy's bounds (a
// database edited by hand, or set by an older authrelay), or workers hashes
// at once would hold more than maxHashMemoryInFlight.
func checkServePolicy(p store.Argon2Params, workers int) error {
	if err := store.PolicyCeiling(p); err != nil {
		return fmt.Errorf("the stored hash policy (%s) is refused: %w; set one within the limits with 'authrelay hash set'", p, err)
	}
	if total := uint64(workers) * uint64(p.Memory); total > maxHashMemoryInFlight {
		fit := max(maxHashMemoryInFlight/uint64(p.Memory), 1)
		return fmt.Errorf("%d hash workers at %d KiB each would hold %d MiB at once, above the limit of %d MiB: give --hash-workers %d or less, or lower the policy's memory with 'authrelay hash set --memory'",
			workers, p.Memory, total/1024, maxHashMemoryInFlight/1024, fit)
	}
	return nil
}

// policyLogger is the store's OnPolicy for a node in cluster mode: it logs
// each hash policy another node set, which this relay hashes new passwords
// (and rehashes at login) at from then on, and says when that policy would
// keep this node from starting (checkServePolicy), or was refused.
func policyLogger(logger *slog.Logger, workers int) func(p store.Argon2Params, err error) {
	return func(p store.Argon2Params, err error) {
		if err != nil {
			logger.Error("the hash policy from the cluster log is refused; this relay keeps hashing at the previous one", "policy", p.String(), "err", err)
			return
		}
		logger.Info("the hash policy changed on another node: new passwords are hashed at it, and users rehashed at their next login", "policy", p.String())
		if err := checkServePolicy(p, workers); err != nil {
			logger.Error("this relay could not start at the new hash policy", "err", err)
		}
	}
}
