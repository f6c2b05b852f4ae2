// Command stripcodelocations removes the machine-specific codeLocations from the metadata that
// `egress-tests-ext update` writes, so the committed file is the same on every checkout.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: stripcodelocations FILE (rewritten in place)")
		os.Exit(2)
	}
	if err := strip(os.Args[1]); err != nil {
		fmt.Fprintf(os.Stderr, "stripcodelocations: %v\n", err)
		os.Exit(1)
	}
}

func strip(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var specs []map[string]json.RawMessage
	if err := json.Unmarshal(data, &specs); err != nil {
		return fmt.Errorf("%s is not the JSON list of specs that `update` writes: %w", path, err)
	}
	for _, s := range specs {
		delete(s, "codeLocations")
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(specs); err != nil {
		return err
	}
	return os.WriteFile(path, out.Bytes(), 0o644)
}
