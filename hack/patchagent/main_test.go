package main

import (
	"bytes"
	"strings"
	"testing"
)

// A stand-in for the upstream function: only the anchor lines and the declarations the
// inserted code uses, so that the test needs no module download.
var upstream = "package tracer\n\nconst (\n\t" + names[0] + "\n\t" + names[1] + "\n)\n\n" + anchor + "\treturn objects, nil\n}\n"

func TestPatchInsertsAfterTheAnchor(t *testing.T) {
	out, err := Patch([]byte(upstream), "tracer.go")
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	i, j := strings.Index(s, anchor), strings.Index(s, marker)
	if i < 0 || j < i+len(anchor)-1 || !strings.Contains(s, "spec.Programs[tcpFentryHook] = kp.Copy()") {
		t.Fatalf("the workaround is not right after the anchor:\n%s", s)
	}
	again, err := Patch(out, "tracer.go")
	if err != nil || !bytes.Equal(again, out) {
		t.Fatalf("patching twice changed the file (%v)", err)
	}
}

// When upstream moves, the build fails naming the file, the function and the fix.
func TestPatchFailsWhenUpstreamMoved(t *testing.T) {
	for name, src := range map[string]string{
		"function renamed":  strings.Replace(upstream, "func kernelSpecificLoadAndAssign(", "func loadAndAssign(", 1),
		"signature changed": strings.Replace(upstream, "pinDir string)", "pinDir string, extra int)", 1),
		"anchor twice":      upstream + anchor + "}\n",
		"constant renamed":  strings.Replace(upstream, "tcpRcvKprobe ", "tcpRcvKprobeHook ", 1),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Patch([]byte(src), "pkg/tracer/tracer.go")
			if err == nil || !strings.Contains(err.Error(), "pkg/tracer/tracer.go") || !strings.Contains(err.Error(), "fix:") {
				t.Fatalf("Patch = %v, want an error naming the file and the fix", err)
			}
		})
	}
}
