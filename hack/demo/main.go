// Command demo runs the whole egress pipeline on this machine, without a cluster: it starts a
// real Loki on 127.0.0.1, loads the recorded capture in testdata/demo into it, and drives the
// egress-tests-ext binary as CI would (collect from Loki, diff against baseline/, propose a
// baseline update), then prints the report and where the artifacts are.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/openshift/egress-tests-ext/internal/lokitest"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

// The recorded cluster: what the e2e spec would read from ClusterVersion, Infrastructure,
// Network and the nodes. It must match hack/gencapture.
const (
	// The recorded window of testdata/demo/capture.json.
	from, to = "2026-11-02T10:00:00Z", "2026-11-02T10:30:00Z"
)

var (
	version         = "4.21.3"
	platform        = "AWS"
	topology        = "HighlyAvailable"
	clusterDomain   = "demo.example.com" // the recorded cluster's domain and region resolve the baseline's placeholders
	region          = "us-east-1"
	clusterNetworks = "10.128.0.0/14,172.30.0.0/16,10.0.0.0/16"
	nodeRoles       = []string{
		"ip-10-0-1-10.ec2.internal=control-plane", "ip-10-0-1-11.ec2.internal=control-plane",
		"ip-10-0-1-12.ec2.internal=control-plane", "ip-10-0-2-20.ec2.internal=worker",
		"ip-10-0-2-21.ec2.internal=worker", "ip-10-0-2-22.ec2.internal=worker",
	}
)

func main() {
	loki := flag.String("loki", "bin/loki", "Loki server binary (make loki)")
	bin := flag.String("bin", "bin/egress-tests-ext", "egress-tests-ext binary (make build)")
	capture := flag.String("capture", "testdata/demo", "directory holding capture.json and names.json")
	flag.Parse()
	if err := run(*loki, *bin, *capture); err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo: FAILED: %v\n", err)
		os.Exit(1)
	}
}

func artifactDir() (string, error) {
	for _, env := range []string{"EXTENSION_ARTIFACT_DIR", "ARTIFACT_DIR"} {
		if d := os.Getenv(env); d != "" {
			return filepath.Join(d, "egress-demo"), nil
		}
	}
	return filepath.Abs(filepath.Join("_output", "demo"))
}

func run(lokiBin, bin, capture string) error {
	fmt.Printf(`egress-tests-ext demo
=====================
This runs on a RECORDING, not on your cluster: %s/capture.json holds 30 minutes of
NetObserv flow records of an AWS HighlyAvailable OpenShift 4.21 cluster, composed by
hack/gencapture in NetObserv's real record format (it is synthetic). Everything after
that is real: a Loki server on 127.0.0.1, the LogQL queries, the matrix, the baseline diff.

`, capture)
	out, err := artifactDir()
	if err != nil {
		return err
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	entries, err := readCapture(filepath.Join(capture, "capture.json"))
	if err != nil {
		return err
	}
	// Loki answers from its ingesters only for recent data, and the recording is weeks old:
	// replay it as if it had been recorded over the last hour. Every timestamp moves by the
	// same offset (entries, the records' own times, the name resolutions), nothing else changes.
	recStart, _ := time.Parse(time.RFC3339, from)
	recEnd, _ := time.Parse(time.RFC3339, to)
	offset := time.Now().UTC().Truncate(time.Minute).Add(-45 * time.Minute).Sub(recStart)
	if err := shiftEntries(entries, offset); err != nil {
		return err
	}
	namesFile := filepath.Join(out, "names.json")
	if err := shiftNames(filepath.Join(capture, "names.json"), namesFile, offset); err != nil {
		return err
	}
	from, to := recStart.Add(offset).Format(time.RFC3339), recEnd.Add(offset).Format(time.RFC3339)

	dataDir, err := os.MkdirTemp("", "egress-demo-loki-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dataDir)
	// LokiStack's default query limits, so the demo meets the limits a cluster has.
	srv, err := lokitest.StartBinary(lokiBin, dataDir, lokitest.LokiStackLimits)
	if err != nil {
		return fmt.Errorf("starting Loki (%s): %w; run `make loki`", lokiBin, err)
	}
	defer func() {
		if err := srv.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "demo: stopping Loki: %v\n", err)
		}
	}()
	fmt.Printf("1. Loki %s is up (tenant %s, data in %s)\n", srv.URL, srv.Tenant, dataDir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := srv.Push(ctx, entries); err != nil {
		return fmt.Errorf("loading the recording into Loki: %w", err)
	}
	fmt.Printf("2. loaded %d recorded flow records, replayed as window %s – %s (recorded %s – %s)\n",
		len(entries), from, to, recStart.Format(time.RFC3339), recEnd.Format(time.RFC3339))

	naming := []string{"--names", namesFile, "--cluster-network", clusterNetworks}
	for _, r := range nodeRoles {
		naming = append(naming, "--node-role", r)
	}
	matrixJSON := filepath.Join(out, "matrix.json")
	flows := filepath.Join(out, "flows.jsonl")
	// The recording is complete once pushed, so there is no late ingestion to wait for.
	collect := append([]string{"matrix", "collect", "--loki-url", srv.URL, "--tenant", srv.Tenant,
		"--from", from, "--to", to, "--ingest-wait", "0", "-o", "json", "--save-flows", flows}, naming...)
	stdout, code, err := runBin(bin, collect, true)
	if err != nil || code != 0 {
		return fmt.Errorf("matrix collect exited %d: %v", code, err)
	}
	if err := os.WriteFile(matrixJSON, stdout, 0o644); err != nil {
		return err
	}
	fmt.Printf("3. collected the egress matrix from Loki → %s\n\n", matrixJSON)

	// The matrix as a table, replayed offline from the saved flows (what `--save-flows` is for).
	md, code, err := runBin(bin, append([]string{"matrix", "build", "--flows", flows, "-o", "markdown"}, naming...), true)
	if err != nil || code != 0 {
		return fmt.Errorf("matrix build exited %d: %v", code, err)
	}
	if err := os.WriteFile(filepath.Join(out, "matrix.md"), md, 0o644); err != nil {
		return err
	}
	fmt.Printf("OBSERVED EGRESS MATRIX\n%s\n", md)

	selectFlags := []string{"--baseline", "baseline", "--version", version, "--platform", platform, "--topology", topology,
		"--cluster-domain", clusterDomain, "--region", region}
	report, code, err := runBin(bin, append([]string{"matrix", "diff", "--matrix", matrixJSON}, selectFlags...), false)
	if err != nil {
		return err
	}
	fmt.Printf("DIFF AGAINST baseline/ (exit code %d)\n%s\n", code, report)
	if err := os.WriteFile(filepath.Join(out, "diff.txt"), report, 0o644); err != nil {
		return err
	}
	diffJSON, _, err := runBin(bin, append([]string{"matrix", "diff", "--matrix", matrixJSON, "-o", "json"}, selectFlags...), false)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "diff.json"), diffJSON, 0o644); err != nil {
		return err
	}
	var diff struct {
		Undocumented []json.RawMessage `json:"undocumented"`
	}
	if err := json.Unmarshal(diffJSON, &diff); err != nil {
		return fmt.Errorf("matrix diff -o json: %w", err)
	}

	// The ready-to-commit update: the baseline file with the undocumented entries appended
	// (what the platform file already documents is not added) and confirmed ones marked.
	proposed := filepath.Join(out, "proposed-common.yaml")
	orig, err := os.ReadFile("baseline/4.21/common.yaml")
	if err != nil {
		return err
	}
	if err := os.WriteFile(proposed, orig, 0o644); err != nil {
		return err
	}
	if _, code, err := runBin(bin, []string{"baseline", "update", "--baseline", proposed, "--with", "baseline/4.21/platform/aws.yaml", "--matrix", matrixJSON,
		"--cluster-domain", clusterDomain, "--region", region}, true); err != nil || code != 0 {
		return fmt.Errorf("baseline update exited %d: %v", code, err)
	}
	patch, _ := exec.Command("diff", "-u", "--label", "baseline/4.21/common.yaml", "--label", "proposed", "baseline/4.21/common.yaml", proposed).Output()
	if err := os.WriteFile(filepath.Join(out, "proposed-common.diff"), patch, 0o644); err != nil {
		return err
	}
	fmt.Printf("PROPOSED BASELINE UPDATE (%s)\n%s\n", filepath.Join(out, "proposed-common.diff"), patch)

	fmt.Printf("ARTIFACTS in %s\n", out)
	names, _ := os.ReadDir(out)
	for _, n := range names {
		fmt.Printf("  %s\n", n.Name())
	}
	// The recording holds exactly one undocumented connection, so the diff must say so:
	// anything else means the pipeline is broken.
	if code != 1 || len(diff.Undocumented) != 1 {
		return fmt.Errorf("the recording holds exactly 1 undocumented connection; matrix diff exited %d with %d undocumented", code, len(diff.Undocumented))
	}
	fmt.Println("\ndemo: as expected, matrix diff exited 1 with the one undocumented connection of the recording")
	return nil
}

// runBin runs the extension binary; with mustSucceed a non-zero exit is returned as err.
func runBin(bin string, args []string, mustSucceed bool) ([]byte, int, error) {
	cmd := exec.Command(bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return nil, code, fmt.Errorf("running %s: %w", bin, err)
	}
	if stderr.Len() > 0 {
		os.Stderr.Write(indent(stderr.Bytes()))
	}
	if mustSucceed && code != 0 {
		return stdout.Bytes(), code, fmt.Errorf("%s %s: exit %d", bin, strings.Join(args[:2], " "), code)
	}
	return stdout.Bytes(), code, nil
}

func indent(b []byte) []byte {
	return []byte("   | " + strings.ReplaceAll(strings.TrimRight(string(b), "\n"), "\n", "\n   | ") + "\n")
}

// readCapture turns a Loki query_range answer back into push entries.
func readCapture(path string) ([]lokitest.Entry, error) {
	entries, err := lokitest.ReadAnswer(path)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%s holds no flow records", path)
	}
	return entries, nil
}

// shiftEntries moves every entry, and the times inside its flow record, by offset.
func shiftEntries(entries []lokitest.Entry, offset time.Duration) error {
	for i := range entries {
		dec := json.NewDecoder(bytes.NewReader(entries[i].Line))
		dec.UseNumber() // keep every other number exactly as recorded
		var rec map[string]any
		if err := dec.Decode(&rec); err != nil {
			return fmt.Errorf("recorded entry %d: %w", i, err)
		}
		for field, unit := range map[string]time.Duration{"TimeFlowStartMs": time.Millisecond, "TimeFlowEndMs": time.Millisecond, "TimeReceived": time.Second} {
			n, ok := rec[field].(json.Number)
			if !ok {
				continue
			}
			v, err := n.Int64()
			if err != nil {
				return fmt.Errorf("recorded entry %d: %s: %w", i, field, err)
			}
			rec[field] = v + int64(offset/unit)
		}
		line, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		entries[i].Line = line
		entries[i].Time = entries[i].Time.Add(offset)
	}
	return nil
}

// shiftNames writes the recorded name resolutions moved by offset.
func shiftNames(in, out string, offset time.Duration) error {
	recorded, err := matrix.LoadNamesFile(in)
	if err != nil {
		return err
	}
	shifted := matrix.NewNames()
	for _, r := range recorded.Resolutions() {
		shifted.Add(r.Address, r.Host, r.From.Add(offset), r.To.Add(offset))
	}
	return matrix.SaveNamesFile(out, shifted)
}
