package accounts

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// maxExpiryDays bounds an expiry given in days.
const maxExpiryDays = 100 * 366

// ParseExpiry parses a user's expiry as 'user add|set --expires' give it:
// "never" or "" (the zero time: no expiry), an RFC 3339 time, a date
// (YYYY-MM-DD, midnight UTC) or a positive duration from now such as 720h
// or 90d (days), cut to the second. The result is in UTC.
func ParseExpiry(s string, now time.Time) (time.Time, error) {
	if s == "" || s == "never" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t.UTC(), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(d).UTC().Truncate(time.Second), nil
	}
	if n, err := strconv.Atoi(strings.TrimSuffix(s, "d")); err == nil && strings.HasSuffix(s, "d") && n > 0 && n <= maxExpiryDays {
		return now.AddDate(0, 0, n).UTC().Truncate(time.Second), nil
	}
	return time.Time{}, fmt.Errorf("--expires %q: want never, a time such as 2027-01-31T18:00:00Z, a date such as 2027-01-31, or a duration such as 90d or 720h", s)
}

// ParseSince parses the start of a time range as 'audit --since' gives
// it: a duration back from now such as 1h (0 is now), an RFC 3339 time or
// a date (YYYY-MM-DD, midnight UTC).
func ParseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want a duration such as 1h or a time such as 2026-12-01T10:00:00Z", s)
}
