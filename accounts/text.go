package accounts

import (
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxClientText is the longest a client-supplied string (a username, a
// client address, a server name from a request) is kept for a log line, an
// audit row or a terminal, in bytes, before ClientText clips it.
const MaxClientText = 128

// ClientText returns s as it may be shown on a terminal or put in a line of
// text output: clipped to MaxClientText bytes at a rune boundary (Clip) and
// then quoted if it holds anything that could forge or hide output (Quote).
// Every string that came from a client, such as a CONNECT username, goes
// through it before it is printed.
func ClientText(s string) string {
	return Quote(Clip(s, MaxClientText))
}

// Clip returns s if it is at most max bytes long, and otherwise its longest
// prefix of whole runes that fits in max bytes, followed by "…". It never
// cuts a UTF-8 encoded rune in half; bytes that are not valid UTF-8 count
// as one rune each.
func Clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	if max < 0 {
		max = 0
	}
	cut := 0
	for cut < len(s) {
		_, size := utf8.DecodeRuneInString(s[cut:])
		if cut+size > max {
			break
		}
		cut += size
	}
	return s[:cut] + "…"
}

// Quote returns s unchanged when it is non-empty and consists only of
// printable runes other than space, '"' and '\\', and otherwise s in Go
// double-quoted form (strconv.Quote): control characters such as "\n" and
// ESC (the start of every ANSI terminal sequence), other non-printable runes
// (bidirectional overrides) and bytes that are not valid UTF-8 come out as
// escapes. A quoted value can neither end a line nor steer a terminal, and
// a value that needs no quotes cannot be mistaken for several fields. It is
// the rule log/slog's text handler applies to its values.
func Quote(s string) string {
	if s != "" && !needsQuote(s) {
		return s
	}
	return strconv.Quote(s)
}

func needsQuote(s string) bool {
	for _, r := range s {
		switch {
		case r == utf8.RuneError, r == ' ', r == '"', r == '\\', !unicode.IsPrint(r):
			// RuneError is also what invalid UTF-8 decodes to.
			return true
		}
	}
	return false
}

// EscapeControl returns s with every control character, other non-printable
// rune and byte that is not valid UTF-8 replaced by its Go escape ("\n",
// "\x1b", "\u202e"), and everything else, spaces and quotes included, left as
// it is. It is for a line of prose that embeds strings from elsewhere (a
// server's answer, an error): the result is one line that cannot steer a
// terminal.
func EscapeControl(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || (r != ' ' && !unicode.IsPrint(r)) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size <= 1) || (r != ' ' && !unicode.IsPrint(r)) {
			q := strconv.Quote(s[i : i+size])
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// Plural returns "1 user" or "n users": noun with its count, and an s for
// any count but one.
func Plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// RedactURL returns the URLs of raw (comma-separated, as nats.Connect takes
// them) with any password replaced by "xxxxx", and a user with no password
// too (NATS reads nats://TOKEN@host as a token), for a log line or a
// terminal.
func RedactURL(raw string) string {
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil {
			continue
		}
		if u.User != nil {
			if _, ok := u.User.Password(); !ok {
				u.User = url.User("xxxxx")
			}
		}
		parts[i] = u.Redacted()
	}
	return strings.Join(parts, ",")
}

// Nearest returns the word of known closest to got, if it is close: at most
// two edits away (one for words of up to four letters), or got a prefix of
// it.
func Nearest(got string, known []string) string {
	best, bestDist := "", 0
	for _, k := range known {
		d := editDistance(strings.ToLower(got), strings.ToLower(k))
		limit := 2
		if len(k) <= 4 {
			limit = 1
		}
		if (d <= limit || (len(got) >= 2 && strings.HasPrefix(k, got))) && (best == "" || d < bestDist) {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b, in
// bytes: insertions, deletions, substitutions and swaps of two neighbours
// ("shwo" is one edit from "show") each count one.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
