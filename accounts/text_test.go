package accounts

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClipNeverSplitsARune(t *testing.T) {
	for _, s := range []string{
		strings.Repeat("é", 100),          // 2 bytes each
		"a" + strings.Repeat("€", 100),    // 3 bytes each, odd offset
		strings.Repeat("😀", 50),           // 4 bytes each
		strings.Repeat("x", 127) + "😀abc", // a rune across the limit
	} {
		for max := 0; max <= MaxClientText+2; max++ {
			got := Clip(s, max)
			if !utf8.ValidString(got) {
				t.Fatalf("Clip(%q…, %d) = %q: not valid UTF-8", s[:8], max, got)
			}
			body := strings.TrimSuffix(got, "…")
			if len(body) > max {
				t.Fatalf("Clip(%q…, %d) kept %d bytes", s[:8], max, len(body))
			}
			if !strings.HasPrefix(s, body) {
				t.Fatalf("Clip(%q…, %d) = %q: not a prefix", s[:8], max, got)
			}
		}
	}
	if got := Clip("short", 10); got != "short" {
		t.Errorf("Clip(short) = %q", got)
	}
	// Invalid bytes are kept one by one, never merged with what follows.
	if got, want := Clip("\xff\xfe€", 2), "\xff\xfe…"; got != want {
		t.Errorf("Clip = %q, want %q", got, want)
	}
}

func TestQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice", "alice"},
		{"alice.b-c_d@example", "alice.b-c_d@example"},
		{"zoë", "zoë"},
		{"", `""`},
		{"a b", `"a b"`},
		{"alice\nTIME login admin allowed", `"alice\nTIME login admin allowed"`},
		{"\x1b[31mred", `"\x1b[31mred"`},
		{"a\"b", `"a\"b"`},
		{`a\b`, `"a\\b"`},
		{"\xff", `"\xff"`},
		{"evil\u202egnp.exe", `"evil\u202egnp.exe"`},
		{"tab\there", `"tab\there"`},
	} {
		got := Quote(tc.in)
		if got != tc.want {
			t.Errorf("Quote(%q) = %s, want %s", tc.in, got, tc.want)
		}
		if strings.ContainsAny(got, "\n\r\x1b") {
			t.Errorf("Quote(%q) = %q holds a control character", tc.in, got)
		}
		if got != tc.in {
			if back, err := strconv.Unquote(got); err != nil || back != tc.in {
				t.Errorf("Quote(%q) = %s does not unquote back (%q, %v)", tc.in, got, back, err)
			}
		}
	}
}

func TestEscapeControl(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`the user "bob" logs in`, `the user "bob" logs in`},
		{"line\nOK    forged", `line\nOK    forged`},
		{"\x1b]0;title\a", `\x1b]0;title\a`},
		{"bad \xff byte", `bad \xff byte`},
		{"rtl \u202e", `rtl \u202e`},
		{"ünïcödé ok", "ünïcödé ok"},
	} {
		if got := EscapeControl(tc.in); got != tc.want {
			t.Errorf("EscapeControl(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestClientTextBoundsAndEscapes(t *testing.T) {
	long := strings.Repeat("\n", 1000)
	got := ClientText(long)
	if strings.Contains(got, "\n") {
		t.Fatalf("ClientText kept a newline: %q", got)
	}
	// 128 newlines, each escaped as two bytes, the quotes and the ellipsis.
	if max := 2*MaxClientText + 2 + len("…"); len(got) > max {
		t.Errorf("ClientText of 1000 bytes returned %d bytes, want at most %d", len(got), max)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":                  "nats://127.0.0.1:4222",
		"nats://u:secret@h:4222":                 "nats://u:xxxxx@h:4222",
		"nats://u:secret@a:1, tls://v:other@b:2": "nats://u:xxxxx@a:1,tls://v:xxxxx@b:2",
		"nats://s3cr3t-token@h:4222":             "nats://xxxxx@h:4222",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNearest(t *testing.T) {
	known := []string{"add", "list", "show", "passwd", "disable", "unlock", "lockouts"}
	for _, c := range []struct{ got, want string }{
		{"shwo", "show"},        // a swap of two neighbours is one edit
		{"lsit", "list"},        // short words allow one edit
		{"passwrd", "passwd"},   // one deletion
		{"dis", "disable"},      // a prefix
		{"LIST", "list"},        // case does not count
		{"lockout", "lockouts"}, // nearer than unlock
		{"xyz", ""},             // nothing close
		{"a", ""},               // one letter is no prefix
	} {
		if got := Nearest(c.got, known); got != c.want {
			t.Errorf("Nearest(%q) = %q, want %q", c.got, got, c.want)
		}
	}
}
