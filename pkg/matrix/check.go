package matrix

import (
	"errors"
	"fmt"
	"strings"
)

// Errors Check wraps, for callers that tell them apart with errors.Is.
var (
	ErrSampled     = errors.New("flow records were sampled")
	ErrEmpty       = errors.New("empty window")
	ErrUndecodable = errors.New("undecodable flow records")
)

// maxCheckErrors is how many decode errors Check quotes.
const maxCheckErrors = 3

// Check reports why the matrix cannot prove that no undocumented flow happened: records
// taken with sampling > 1 (connections may be missing), no record at all (nothing was
// recorded, which is not the same as no egress), or records that could not be decoded. It
// returns nil when none applies, else every problem found, joined. Callers check before
// diffing, and fail on an error: a diff of an incomplete matrix is not a result.
func (m *Matrix) Check() error {
	s := m.Stats
	var errs []error
	if s.Sampled > 0 {
		rate := "above 1:1"
		if s.SamplingMax > 1 {
			rate = fmt.Sprintf("at 1:%d", s.SamplingMax) // the highest rate, if they differed
		}
		errs = append(errs, fmt.Errorf("%w: FlowCollector spec.agent.ebpf.sampling must be 1; %d of %d records were sampled %s, so connections may be missing: set spec.agent.ebpf.sampling: 1 and record the window again",
			ErrSampled, s.Sampled, s.Records, rate))
	}
	if s.Records == 0 && s.Undecodable == 0 {
		errs = append(errs, fmt.Errorf("%w: no flow records at all — is the FlowCollector running and exporting to this Loki? check that FlowCollector \"cluster\" is Ready, that spec.loki points at the Loki queried, and that the window covers the test run", ErrEmpty))
	}
	if s.Undecodable > 0 {
		detail := "no error was kept"
		if len(m.DecodeErrors) > 0 {
			detail = strings.Join(m.DecodeErrors[:min(len(m.DecodeErrors), maxCheckErrors)], "; ")
		}
		what := fmt.Sprintf("%d flow records could not be decoded", s.Undecodable)
		if s.Records == 0 {
			what = fmt.Sprintf("none of the %d flow records could be decoded", s.Undecodable)
		}
		errs = append(errs, fmt.Errorf("%w: %s, so connections may be missing from the matrix; first errors: %s; fix the records or the decoder for the format named, and build the matrix again",
			ErrUndecodable, what, detail))
	}
	return errors.Join(errs...)
}
