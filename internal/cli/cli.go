// Package cli holds the subcommands of egress-tests-ext beside OTE's: the offline
// `matrix build|diff|render` and `baseline update|validate`, and `capture start|status|stop`,
// which talk to the cluster (pkg/capture). cmd/egress-tests-ext adds Commands() to its cobra root and
// exits with ExitCode(err).
//
// Exit codes:
//
//	0  success; for `matrix diff`: every observed connection is documented
//	1  `matrix diff` found undocumented connections (or egress flows whose server port could
//	   not be decided, unless --allow-undecided)
//	2  any error: bad flags, unreadable or invalid input, an incomplete observation (sampled or
//	   undecodable records, no records at all); for `capture`: no cluster, a failed install,
//	   no flows, no record to show or stop
package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// Exit codes, see the package documentation.
const (
	CodeOK           = 0
	CodeUndocumented = 1
	CodeError        = 2
)

// ExitError is an error that carries the process exit code.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode maps an error returned by a command to the process exit code: nil is 0, an
// *ExitError its Code, anything else (flag errors included) 2.
func ExitCode(err error) int {
	if err == nil {
		return CodeOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return CodeError
}

// Commands returns the `matrix`, `baseline` and `capture` command trees.
func Commands() []*cobra.Command {
	return []*cobra.Command{newMatrixCmd(), newBaselineCmd(), newCaptureCmd(realClients)}
}
