package deploy

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/authrelay/authrelay/accounts"
)

// confKey is a key of a nats.conf statement and where it is.
type confKey struct {
	name  string
	path  []string // the keys of the blocks it is in, outermost first
	file  string
	line  int
	value string // the first word after the key, for jetstream's
}

func (k confKey) where() string { return fmt.Sprintf("%s:%d", k.file, k.line) }

// maxIncludeDepth bounds include chains, as a loop of includes would
// otherwise never end.
const maxIncludeDepth = 10

// scanConfKeys lists the keys of the statements of the nats.conf at path
// and of the files it includes, with their file and line. nats-server's
// parser keeps only the last of two equal keys of a block, and says
// nothing: this is how a duplicate is found. skip names files not to read
// (accounts.conf, which authrelay writes and checks itself).
func scanConfKeys(path string, skip map[string]bool) ([]confKey, error) {
	var out []confKey
	err := scanConfFile(path, nil, skip, 0, &out)
	return out, err
}

func scanConfFile(path string, outer []string, skip map[string]bool, depth int, out *[]confKey) error {
	if depth > maxIncludeDepth {
		return fmt.Errorf("%s: includes nest more than %d deep", path, maxIncludeDepth)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	src := string(b)
	stack := append([]string(nil), outer...)
	var brackets int // inside [ ] arrays no statement starts
	line := 1
	atStart := true    // a key may start here
	var pending string // a key whose block may open next
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
			atStart = brackets == 0
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '#' || (c == '/' && i+1 < len(src) && src[i+1] == '/'):
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'':
			j := i + 1
			for j < len(src) && src[j] != c && src[j] != '\n' {
				if src[j] == '\\' && c == '"' {
					j++
				}
				j++
			}
			word := src[i+1 : min(j, len(src))]
			i = j + 1
			if atStart && brackets == 0 {
				// A quoted key, such as an account name.
				*out = append(*out, confKey{name: word, path: append([]string(nil), stack...), file: path, line: line, value: nextWord(src[i:])})
				pending, atStart = word, false
			}
		case c == '{':
			if brackets == 0 {
				stack = append(stack, pending)
			}
			pending, atStart = "", brackets == 0
			i++
		case c == '}':
			if brackets == 0 && len(stack) > len(outer) {
				stack = stack[:len(stack)-1]
			}
			atStart = brackets == 0
			i++
		case c == '[':
			brackets++
			i++
		case c == ']':
			if brackets > 0 {
				brackets--
			}
			i++
		case c == ',' || c == ';':
			atStart = brackets == 0
			i++
		case c == ':' || c == '=':
			i++
		default:
			j := i
			for j < len(src) && !strings.ContainsRune(" \t\r\n:=,;{}[]#\"'", rune(src[j])) {
				j++
			}
			word := src[i:j]
			if j == i {
				j++
			}
			i = j
			if !atStart || brackets > 0 {
				continue
			}
			atStart = false
			if strings.EqualFold(word, "include") {
				inc := strings.Trim(nextWord(src[i:]), `"'`)
				for i < len(src) && src[i] != '\n' {
					i++
				}
				atStart = true
				p := inc
				if !filepath.IsAbs(p) {
					p = filepath.Join(filepath.Dir(path), p)
				}
				if skip[filepath.Clean(p)] {
					continue
				}
				if err := scanConfFile(p, stack, skip, depth+1, out); err != nil {
					return fmt.Errorf("%s:%d: include %q: %w", path, line, inc, err)
				}
				continue
			}
			*out = append(*out, confKey{name: word, path: append([]string(nil), stack...), file: path, line: line, value: nextWord(src[i:])})
			pending = word
		}
	}
	return nil
}

// nextWord returns the first word of s after a separator, such as the
// value of "key: value" or "{" of a block.
func nextWord(s string) string {
	s = strings.TrimLeft(s, " \t:=")
	if s != "" && s[0] == '{' {
		return "{"
	}
	end := strings.IndexAny(s, " \t\r\n,;}#")
	if end < 0 {
		end = len(s)
	}
	return strings.Trim(s[:end], `"'`)
}

// ownTopKey reports whether k is a top-level key of the nats.conf that
// init writes.
func ownTopKey(k string) bool {
	switch k {
	case "listen", "server_name", "jetstream", "mqtt", "tls", "system_account", "accounts", "authorization":
		return true
	}
	return false
}

// ServerConfConflicts reports the settings of DIR/nats.conf, and of the
// files it includes, that clash with what authrelay writes or relies on,
// each with the file and line and what to do: a second server_name,
// jetstream, accounts block or other key of init's at the top level, or a
// second definition of an account (nats-server keeps one and says
// nothing), and an account of authrelay's (apps, those of accounts.conf)
// defined again in the config, where one of the two definitions is
// silently lost, JetStream included. No conflict is an empty list.
func (l Layout) ServerConfConflicts(apps []string) ([]string, error) {
	conf := l.Path(ServerConf)
	accountsConf, err := filepath.Abs(l.Path(AccountsConf))
	if err != nil {
		return nil, fmt.Errorf("check %s: %w", conf, err)
	}
	keys, err := scanConfKeys(conf, map[string]bool{filepath.Clean(l.Path(AccountsConf)): true, accountsConf: true})
	if err != nil {
		return nil, fmt.Errorf("check %s: %w", conf, err)
	}
	app := map[string]bool{}
	for _, a := range apps {
		app[a] = true
	}
	var out []string
	first := map[string]confKey{}
	for _, k := range keys {
		top := len(k.path) == 0 && ownTopKey(strings.ToLower(k.name))
		inAccounts := len(k.path) == 1 && strings.EqualFold(k.path[0], "accounts")
		if !top && !inAccounts {
			continue
		}
		what := strings.ToLower(k.name)
		if inAccounts {
			what = "account " + k.name
		}
		if f, ok := first[what]; ok {
			out = append(out, fmt.Sprintf("%s sets %s again (first at %s): nats-server keeps only one of the two, with no error; keep one and remove the other (authrelay init wrote one into %s)", k.where(), what, f.where(), ServerConf))
			continue
		}
		first[what] = k
		if inAccounts && app[k.name] {
			out = append(out, fmt.Sprintf("%s defines account %s, which authrelay defines in %s: nats-server keeps one of the two definitions (jetstream and limits included), with no error; remove it from %s and set it with 'authrelay account set %s' (--jetstream, --js-max-*, limits)", k.where(), k.name, AccountsConf, k.file, k.name))
		}
	}
	return out, nil
}

// CheckJetStreamConf refuses, before anything changes, to give account a
// JetStream when DIR/nats.conf would not: the file does not parse (the
// server's error, with its file and line), has JetStream off (a directory
// from before init wrote a jetstream block: the error says what to add),
// or has a setting that clashes with init's or accounts.conf's
// (ServerConfConflicts). An account without JetStream passes.
func (l Layout) CheckJetStreamConf(a accounts.Account) error {
	if !a.JetStream {
		return nil
	}
	path := l.Path(ServerConf)
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		return invalidf("account %s: JetStream needs a server config that loads: %s: %v: fix the file (authrelay doctor --offline --dir %s), then run the command again (nothing changed)", a.Name, path, err, l.Dir)
	}
	conflicts, err := l.ServerConfConflicts([]string{a.Name})
	if err != nil {
		return err
	}
	if len(conflicts) > 0 {
		return invalidf("account %s: %s; then run the command again (nothing changed)", a.Name, strings.Join(conflicts, "; "))
	}
	if !opts.JetStream {
		abs, err := filepath.Abs(l.Dir)
		if err != nil {
			return fmt.Errorf("check %s: %w", path, err)
		}
		return invalidf("account %s: %s has JetStream off, so the account would have none: add server_name: %q and jetstream { store_dir: %q } at its top level and restart nats-server (README: Upgrading), then run the command again (nothing changed)",
			a.Name, path, DefaultServerName(net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port))), abs)
	}
	return nil
}
