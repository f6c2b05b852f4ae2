// Command patchagent prepares the NetObserv eBPF agent's source for the lab build: it copies
// the agent module out of the Go module cache and applies the one change this machine kind
// needs, then writes a go.mod beside it that builds the agent through a replace.
//
// Why: the stock agent loads every BPF program of its collection, the fentry program
// tcp_rcv_fentry included, even with RTT off (it is only attached with ENABLE_RTT). Here the
// kernel refuses BPF_PROG_TYPE_TRACING programs (EPERM), so the stock agent exits at start
// (see ../shared/design/lab.md). Before the collection is loaded, in
// kernelSpecificLoadAndAssign (pkg/tracer/tracer.go), the patch puts a copy of the kprobe
// variant of the same hook (tcp_rcv_kprobe) in the spec under the fentry program's name. A
// kprobe program loads here; it is never attached since the lab runs without RTT.
//
// The edit is textual and anchored on the upstream lines it follows: when the agent's
// source moves, patchagent fails naming the file and function, and the anchor must be
// re-read in the new version. Nothing of the agent's source is kept in this repository.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// TracerFile is the file the patch edits, relative to the agent module's root.
const TracerFile = "pkg/tracer/tracer.go"

// anchor is the start of kernelSpecificLoadAndAssign in v1.10.1-community: its signature
// and first statement. The patch goes right after it, before any case loads the spec.
const anchor = "func kernelSpecificLoadAndAssign(oldKernel, rtKernel, supportNetworkEvents bool, spec *cilium.CollectionSpec, pinDir string) (ebpf.BpfObjects, error) {\n\tobjects := ebpf.BpfObjects{}\n"

// names are the upstream constants the inserted lines use; they must exist as declared.
var names = []string{
	"tcpFentryHook                       = \"tcp_rcv_fentry\"",
	"tcpRcvKprobe                        = \"tcp_rcv_kprobe\"",
}

// marker makes the patch idempotent and visible in the copy.
const marker = "// egress-tests-ext lab patch (hack/patchagent)"

const insert = "\t" + marker + `: this kernel refuses BPF_PROG_TYPE_TRACING
	// (EPERM) and the agent loads its fentry program even when RTT is off. Load the kprobe
	// variant of the same hook under the fentry program's name instead; it is only attached
	// with ENABLE_RTT, which the lab never sets.
	if kp, ok := spec.Programs[tcpRcvKprobe]; ok {
		spec.Programs[tcpFentryHook] = kp.Copy()
	} else {
		return objects, fmt.Errorf("egress-tests-ext lab patch: program %q not in the collection spec", tcpRcvKprobe)
	}
`

// Patch returns tracer.go's source with the workaround applied. name is only used in errors.
func Patch(src []byte, name string) ([]byte, error) {
	if bytes.Contains(src, []byte(marker)) {
		return src, nil
	}
	s := string(src)
	if n := strings.Count(s, anchor); n != 1 {
		return nil, fmt.Errorf("%s: the start of func kernelSpecificLoadAndAssign (its signature and `objects := ebpf.BpfObjects{}`) is found %d times, want 1: the agent's source moved; fix: re-read kernelSpecificLoadAndAssign in this agent version and update the anchor in hack/patchagent/main.go", name, n)
	}
	for _, decl := range names {
		if !strings.Contains(s, decl) {
			return nil, fmt.Errorf("%s: declaration %q not found: the agent renamed its program constants; fix: update hack/patchagent/main.go to the new names", name, decl)
		}
	}
	return []byte(strings.Replace(s, anchor, anchor+insert, 1)), nil
}

func main() {
	src := flag.String("src", "", "the agent module's directory in the module cache")
	out := flag.String("out", "", "directory to write the patched copy into (replaced entirely)")
	tools := flag.String("tools", "", "the tools module directory (its go.mod and go.sum are copied)")
	build := flag.String("build", "", "directory for the build module: tools go.mod + a replace to -out")
	flag.Parse()
	if *src == "" || *out == "" || *tools == "" || *build == "" {
		fmt.Fprintln(os.Stderr, "usage: patchagent -src MODDIR -out DIR -tools hack/tools/netobserv -build DIR")
		os.Exit(2)
	}
	if err := run(*src, *out, *tools, *build); err != nil {
		fmt.Fprintln(os.Stderr, "patchagent:", err)
		os.Exit(1)
	}
}

func run(src, out, tools, build string) error {
	tracer := filepath.Join(src, TracerFile)
	orig, err := os.ReadFile(tracer)
	if err != nil {
		return fmt.Errorf("%w; fix: `go mod download` in %s first", err, tools)
	}
	patched, err := Patch(orig, tracer)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	if err := copyTree(src, out); err != nil {
		return fmt.Errorf("copying %s to %s: %w", src, out, err)
	}
	if err := os.WriteFile(filepath.Join(out, TracerFile), patched, 0o644); err != nil {
		return err
	}
	if err := os.MkdirAll(build, 0o755); err != nil {
		return err
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(tools, f))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(build, f), b, 0o644); err != nil {
			return err
		}
	}
	absOut, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "mod", "edit", "-replace", "github.com/netobserv/netobserv-ebpf-agent="+absOut)
	cmd.Dir = build
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go mod edit -replace in %s: %w", build, err)
	}
	return nil
}

// copyTree copies a module directory; files from the module cache are read-only, the copy
// is writable so that the next run can remove it.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, 0o644)
		case d.Type()&fs.ModeSymlink != 0:
			return errors.New(p + ": symlink in a module zip")
		}
		return nil
	})
}
