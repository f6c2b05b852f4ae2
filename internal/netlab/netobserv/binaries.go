package netobserv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/mod/modfile"
)

const (
	agentModule = "github.com/netobserv/netobserv-ebpf-agent"
	flpModule   = "github.com/netobserv/flowlogs-pipeline"
	toolsGoMod  = "hack/tools/netobserv/go.mod"
)

// repoRoot is the directory of the main module's go.mod, found from this source file.
func repoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("no caller information")
	}
	dir := filepath.Dir(file)
	for {
		if _, err := os.Stat(filepath.Join(dir, toolsGoMod)); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%s not found above %s", toolsGoMod, file)
		}
		dir = parent
	}
}

// Binaries returns the agent's and FLP's paths: AGENT_BIN and FLP_BIN when set (relative to
// the repository when not found from here), else bin/netobserv-ebpf-agent and
// bin/flowlogs-pipeline of the repository. An error says what to build.
func Binaries() (agent, flp string, err error) {
	root, rootErr := repoRoot()
	find := func(env, name, target string) (string, error) {
		if p := os.Getenv(env); p != "" {
			if _, err := os.Stat(p); err != nil && !filepath.IsAbs(p) && rootErr == nil {
				p = filepath.Join(root, p) // `go test` runs in the package directory
			}
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("%s=%s: %w; fix: `make %s`", env, p, err, target)
			}
			return p, nil
		}
		if rootErr != nil {
			return "", fmt.Errorf("%s unset and no repository found (%v); fix: set %s", env, rootErr, env)
		}
		p := filepath.Join(root, "bin", name)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s: %w; fix: `make %s` (or set %s)", p, err, target, env)
		}
		return p, nil
	}
	if agent, err = find("AGENT_BIN", "netobserv-ebpf-agent", "agent"); err != nil {
		return "", "", err
	}
	if flp, err = find("FLP_BIN", "flowlogs-pipeline", "flp"); err != nil {
		return "", "", err
	}
	return agent, flp, nil
}

// Versions returns the agent's and FLP's versions pinned in hack/tools/netobserv/go.mod,
// the one place they are written; "unknown (why)" when that file cannot be read.
func Versions() (agent, flp string) {
	agent, flp, err := versions()
	if err != nil {
		u := "unknown (" + err.Error() + ")"
		return u, u
	}
	return agent, flp
}

func versions() (agent, flp string, err error) {
	root, err := repoRoot()
	if err != nil {
		return "", "", err
	}
	path := filepath.Join(root, toolsGoMod)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	f, err := modfile.ParseLax(path, b, nil)
	if err != nil {
		return "", "", err
	}
	for _, r := range f.Require {
		switch r.Mod.Path {
		case agentModule:
			agent = r.Mod.Version
		case flpModule:
			flp = r.Mod.Version
		}
	}
	if agent == "" || flp == "" {
		return "", "", fmt.Errorf("%s requires no %s or %s", path, agentModule, flpModule)
	}
	return agent, flp, nil
}
