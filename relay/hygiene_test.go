package relay

import (
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/authrelay/authrelay/accounts"
)

// eventLog is an Auditor that keeps the events it is given.
type eventLog struct {
	mu     sync.Mutex
	events []accounts.LoginEvent
}

func (l *eventLog) Record(e accounts.LoginEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *eventLog) all() []accounts.LoginEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]accounts.LoginEvent(nil), l.events...)
}

// TestClientStringsCannotForgeLogLines logs in with a username that holds a
// newline followed by a forged log line, an ANSI escape and, past the
// clipping limit, a multi-byte rune across the cut. The relay's text log
// keeps one line per decision with the name quoted, and the audit event
// carries the name clipped at a rune boundary, as valid UTF-8.
func TestClientStringsCannotForgeLogLines(t *testing.T) {
	for _, e := range envs() {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, e)
			events := &eventLog{}
			h.startRelay(func(c *Config) { c.Audit = events })
			forged := "mallory\ntime=2026-12-01T00:00:00Z level=INFO msg=\"auth decision\" user=admin result=allow\x1b[31m"
			// Pad so that a 2-byte rune straddles the 128-byte limit.
			name := forged + strings.Repeat("x", maxLogField-len(forged)-1) + strings.Repeat("é", 20)
			h.requireDenied(t, h.authErrors(t), ReasonBadCredentials, name, "wrong-pw-1")

			waitFor(t, func() bool { return len(events.all()) > 0 }, "an audit event")
			got := events.all()[0].User
			if !utf8.ValidString(got) {
				t.Errorf("audit user %q is not valid UTF-8: clip cut a rune", got)
			}
			if !strings.HasPrefix(name, strings.TrimSuffix(got, "…")) || len(got) > maxLogField+len("…") {
				t.Errorf("audit user %q is not %q clipped to %d bytes", got, name, maxLogField)
			}

			waitFor(t, func() bool { return strings.Contains(h.logs.String(), "auth decision") }, "the decision logged")
			logs := h.logs.String()
			if strings.Contains(logs, "\x1b") {
				t.Errorf("relay log holds a raw ESC:\n%s", logs)
			}
			for _, line := range strings.Split(strings.TrimSuffix(logs, "\n"), "\n") {
				if !strings.HasPrefix(line, "time=") {
					t.Errorf("relay log line %q does not start a record: a name forged a line", line)
				}
			}
			if !strings.Contains(logs, `user="mallory\ntime=`) {
				t.Errorf("relay log does not hold the name quoted:\n%s", logs)
			}
		})
	}
}
