package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompletionBash sources 'authrelay completion bash' in a real bash and
// completes partial command lines with the real binary: commands,
// subcommands and flags come from authrelay's own -h, including ones added
// later (reload, --no-reload).
func TestCompletionBash(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the real binary; skipped with -short")
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("no bash to test the completion in: %v", err)
	}
	bin := buildE2EBinaries(t)
	script := filepath.Join(t.TempDir(), "complete.sh")
	r := mustRun(t, "", "completion", "bash")
	cases := map[string]string{
		"authrelay us":                  "user",
		"authrelay rel":                 "reload",
		"authrelay user a":              "add",
		"authrelay user add --acc":      "--account",
		"authrelay --dir x user l":      "list lockouts",
		"authrelay account add X --no":  "--no-reload",
		"authrelay hash set --min-pass": "--min-password-length",
	}
	var sh strings.Builder
	sh.WriteString(r.stdout)
	for line := range cases {
		sh.WriteString("read -ra COMP_WORDS <<< '" + line + "'\n")
		sh.WriteString("COMP_WORDS[0]=" + bin.authrelay + "\nCOMP_CWORD=$((${#COMP_WORDS[@]}-1))\n_authrelay\n")
		sh.WriteString("echo '" + line + " ->' \"${COMPREPLY[*]}\"\n")
	}
	if err := os.WriteFile(script, []byte(sh.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bash, "--norc", "--noprofile", script).CombinedOutput()
	if err != nil {
		t.Fatalf("bash %s: %v\n%s", script, err, out)
	}
	for line, want := range cases {
		if !strings.Contains(string(out), line+" -> "+want+"\n") {
			t.Errorf("completing %q: want %q; bash printed:\n%s", line, want, out)
		}
	}
	if r := run(t, "", "completion", "fish"); r.code != exitUsage || !strings.Contains(r.stderr, "bash") {
		t.Errorf("completion fish: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := mustRun(t, "", "completion", "zsh"); !strings.Contains(r.stdout, "bashcompinit") || !strings.Contains(r.stdout, "complete -o default -F _authrelay authrelay") {
		t.Errorf("completion zsh:\n%s", r.stdout)
	}
}
