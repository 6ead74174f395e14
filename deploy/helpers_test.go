package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testCost is the cheapest bcrypt cost, so tests do not wait on hashing.
const testCost = 4

// initDir initialises a fresh directory with the application account APP.
func initDir(t *testing.T) Layout {
	t.Helper()
	l := Layout{Dir: filepath.Join(t.TempDir(), "data")}
	if err := Init(t.Context(), l, InitOptions{Accounts: []string{"APP"}, Listen: DefaultListen, BcryptCost: testCost}); err != nil {
		t.Fatalf("init: %v", err)
	}
	return l
}

// editConf rewrites the directory's file name with edit.
func editConf(t *testing.T, l Layout, name string, edit func(string) string) {
	t.Helper()
	path := l.Path(name)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(edit(string(b))), 0o644); err != nil {
		t.Fatal(err)
	}
}

// replaceLine replaces the first line of s whose trimmed text starts with
// prefix by line, and fails when there is none.
func replaceLine(t *testing.T, s, prefix, line string) string {
	t.Helper()
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), prefix) {
			lines[i] = line
			return strings.Join(lines, "\n")
		}
	}
	t.Fatalf("no line starting with %q", prefix)
	return s
}
