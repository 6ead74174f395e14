package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// forgedName is a CONNECT username that, printed raw, would end the line,
// forge an allowed login by admin, and turn the terminal red.
const forgedName = "mallory\n2026-12-01T00:00:00Z  login  admin  APP  allowed\x1b[31m"

// TestAuditOutputEscapesClientNames logs in through the real embedded
// server with a forged username, then reads it back with 'authrelay audit':
// the text output keeps one line per row, with the name quoted and no raw
// ESC; --json is valid JSON that gives the name back byte for byte; the
// serve log keeps one record per line.
func TestAuditOutputEscapesClientNames(t *testing.T) {
	for _, e := range envs {
		t.Run(e.name, func(t *testing.T) {
			s := serveEmbedded(t, e.xkey)
			_, err := s.connect(forgedName, "wrong-pw")
			wantAuthViolation(t, err)
			s.stop() // flushes the audit writer

			r := mustRun(t, "", "audit", "--dir", s.dir, "--kind", "login")
			if strings.Contains(r.stdout, "\x1b") {
				t.Errorf("audit text holds a raw ESC:\n%s", r.stdout)
			}
			lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
			if len(lines) != 2 {
				t.Fatalf("audit text has %d lines, want a header and one row:\n%s", len(lines), r.stdout)
			}
			if !strings.Contains(lines[1], `"mallory\n2026-12-01T00:00:00Z  login  admin  APP  allowed\x1b[31m"`) {
				t.Errorf("audit row does not show the name quoted:\n%s", lines[1])
			}

			r = mustRun(t, "", "audit", "--dir", s.dir, "--kind", "login", "--json")
			var rows []auditView
			if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
				t.Fatalf("audit --json is not JSON: %v\n%s", err, r.stdout)
			}
			if len(rows) != 1 || rows[0].User != forgedName || rows[0].Reason != "bad_credentials" {
				t.Errorf("audit --json rows = %+v, want one bad_credentials row for %q", rows, forgedName)
			}

			// The log also holds serve's banner, lines of prose; the
			// forged text must only ever appear inside a record.
			for _, line := range strings.Split(s.log.String(), "\n") {
				if strings.Contains(line, "2026-12-01T00:00:00Z") && !strings.HasPrefix(line, "time=") {
					t.Errorf("serve log line %q does not start a record: a name forged a line", line)
				}
			}
			if strings.Contains(s.log.String(), "\x1b") {
				t.Errorf("serve log holds a raw ESC")
			}
		})
	}
}

// TestDoctorResultsEscapeControlCharacters: a doctor message embeds what a
// server answered, such as the account a login landed in; a newline or an
// ANSI escape in it comes out escaped, in text and JSON alike.
func TestDoctorResultsEscapeControlCharacters(t *testing.T) {
	d := &doctor{}
	d.fail("relay login", "the relay's user %q logs in to account %s", "authrelay", "APP\nOK    everything  fine\x1b[2J")
	got := d.results[0].Message
	if want := `the relay's user "authrelay" logs in to account APP\nOK    everything  fine\x1b[2J`; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
}
