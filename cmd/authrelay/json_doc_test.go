package main

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// jsonDocRow is one row of the README's JSON output table: the command
// and the fields its value (or each element) has, "?" marking optional.
type jsonDocRow struct {
	command  string
	required []string
	optional []string
}

// readJSONDoc reads the table of the README's "JSON output" section:
// the first backquoted command of each row, and the top-level field names
// of its third column (names inside parentheses belong to a nested object
// and are left out).
func readJSONDoc(t *testing.T) map[string]jsonDocRow {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "\n## JSON output\n")
	if start < 0 {
		t.Fatal("README has no JSON output section")
	}
	section := text[start+1:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	code := regexp.MustCompile("`([^`]*)`")
	rows := map[string]jsonDocRow{}
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, " | ")
		if !strings.HasPrefix(line, "| `") || len(cells) != 3 {
			continue
		}
		cmd := code.FindStringSubmatch(cells[0])[1]
		fields := cells[2]
		// Drop nested lists: "effective (`pub` `sub` …)".
		for depth, i, out := 0, 0, ""; ; i++ {
			if i == len(fields) {
				fields = out
				break
			}
			switch c := fields[i]; {
			case c == '(':
				depth++
			case c == ')':
				depth--
			case depth == 0:
				out += string(c)
			}
		}
		var row jsonDocRow
		row.command = cmd
		for _, m := range code.FindAllStringSubmatch(fields, -1) {
			name := m[1]
			if strings.ContainsAny(name, " ,") {
				continue
			}
			if n, ok := strings.CutSuffix(name, "?"); ok {
				row.optional = append(row.optional, n)
			} else {
				row.required = append(row.required, name)
			}
		}
		rows[cmd] = row
	}
	return rows
}

// TestJSONFieldsAsDocumented runs each command of the README's JSON output
// table and checks its value: every field the table names without '?' is
// there, and no field is there that the table does not name.
func TestJSONFieldsAsDocumented(t *testing.T) {
	doc := readJSONDoc(t)
	s := serveEmbedded(t, true)
	mustRun(t, "", "role", "add", "svc", "--dir", s.dir, "--pub", "svc.{{name}}.>")
	mustRun(t, "", "idp", "add", "corp", "--dir", s.dir, "--issuer", "http://127.0.0.1:1", "--audience", "nats",
		"--roles-claim", "groups", "--role-map", "nats=svc", "--create-users", "--account", "APP")
	mustRun(t, "", "user", "add", "carol", "--idp", "corp", "--dir", s.dir)
	s.addUser(t, "alice", "alice-pass-1", "--role", "svc", "--sub", "x.>", "--allow-responses")
	nc, err := s.connect("alice", "alice-pass-1")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// Wrong passwords for bob, enough to lock the pair out: user lockouts
	// has a row to show.
	for range 6 {
		if _, err := s.connect("bob", "wrong-pass"); err == nil {
			t.Fatal("a wrong password logged in")
		}
	}
	s.stop() // flushes the audit trail
	s = serveOn(t, s.dir)
	nc2, err := s.connect("alice", "alice-pass-1")
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()

	runs := map[string][]string{
		"user list --json":         {"user", "list", "--json"},
		"user show NAME --json":    {"user", "show", "alice", "--json"},
		"user explain NAME --json": {"user", "explain", "alice", "--json"},
		"role list --json":         {"role", "list", "--json"},
		"account list --json":      {"account", "list", "--json"},
		"export --json":            {"export", "--json"},
		"audit --json":             {"audit", "--json"},
		"hash show --json":         {"hash", "show", "--json"},
		"idp list --json":          {"idp", "list", "--json"},
		"import FILE --json":       {"import", "testdata/import/nats.conf", "--dry-run", "--json"},
		"doctor --json":            {"doctor", "--json", "--nats", s.url},
		"sessions --json":          {"sessions", "--json", "--nats", s.url},
		"user lockouts --json":     nil, // empty here; its fields are the view's
		"bench --json":             nil, // the report, documented in Performance
		"version --json":           {"version", "--json"},
	}
	for cmd, row := range doc {
		args, ok := runs[cmd]
		if !ok {
			t.Errorf("the README documents %q, which this test does not run: add it", cmd)
			continue
		}
		if args == nil {
			continue
		}
		if args[0] != "version" {
			args = append(args, "--dir", s.dir)
		}
		r := run(t, "", args...)
		if r.code != exitOK && !(args[0] == "doctor" && r.code == exitFailure) {
			t.Errorf("authrelay %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
			continue
		}
		var v any
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
			t.Errorf("authrelay %s: %v\n%s", strings.Join(args, " "), err, r.stdout)
			continue
		}
		objs := []map[string]any{}
		switch v := v.(type) {
		case map[string]any:
			objs = append(objs, v)
		case []any:
			for _, e := range v {
				if o, ok := e.(map[string]any); ok {
					objs = append(objs, o)
				}
			}
		}
		if len(objs) == 0 {
			t.Errorf("authrelay %s: no object to check in %s", strings.Join(args, " "), r.stdout)
			continue
		}
		for _, o := range objs {
			for _, f := range row.required {
				if _, ok := o[f]; !ok {
					t.Errorf("%s: field %q documented, not in the output %v", cmd, f, keysOf(o))
				}
			}
			for f := range o {
				if !slices.Contains(row.required, f) && !slices.Contains(row.optional, f) {
					t.Errorf("%s: field %q in the output is not documented in the README", cmd, f)
				}
			}
		}
	}
	for cmd := range runs {
		if _, ok := doc[cmd]; !ok {
			t.Errorf("the test runs %q, which the README's JSON table does not document", cmd)
		}
	}
}

func keysOf(o map[string]any) []string {
	var ks []string
	for k := range o {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// TestREADMECommandTableNamesEveryCommand: every command 'authrelay -h'
// lists, and every subcommand each command's -h lists, has a row in the
// README's command table, and the table names no command that does not
// exist.
func TestREADMECommandTableNamesEveryCommand(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	table := readme[strings.Index(readme, "\n## Commands\n"):]
	table = table[:strings.Index(table[1:], "\n## ")+1]
	list := func(args ...string) []string {
		r := mustRun(t, "", args...)
		var names []string
		on := false
		for _, line := range strings.Split(r.stdout, "\n") {
			switch {
			case line == "Commands:" || line == "Subcommands:":
				on = true
			case on && strings.HasPrefix(line, "  ") && len(strings.TrimSpace(line)) > 0:
				names = append(names, strings.Fields(line)[0])
			case on && line != "" && !strings.HasPrefix(line, " "):
				on = false
			}
		}
		return names
	}
	cmds := list("-h")
	if len(cmds) < 10 {
		t.Fatalf("authrelay -h lists %v", cmds)
	}
	for _, c := range cmds {
		if !strings.Contains(table, "`authrelay "+c) {
			t.Errorf("the README's command table has no row for 'authrelay %s'", c)
		}
		for _, sub := range list(c, "-h") {
			if !regexp.MustCompile(`authrelay ` + c + ` (?:[^|]|\\\|)*\b` + regexp.QuoteMeta(sub) + `\b`).MatchString(table) {
				t.Errorf("the README's command table does not name 'authrelay %s %s'", c, sub)
			}
		}
	}
	for _, m := range regexp.MustCompile("\\| `authrelay ([a-z-]+)").FindAllStringSubmatch(table, -1) {
		if !slices.Contains(cmds, m[1]) {
			t.Errorf("the README's command table names 'authrelay %s', which 'authrelay -h' does not list", m[1])
		}
	}
}
