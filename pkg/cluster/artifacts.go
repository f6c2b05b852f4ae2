package cluster

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// ArtifactDir is where the run's artifacts go: $EXTENSION_ARTIFACT_DIR (openshift-tests), else
// $ARTIFACT_DIR (Prow), else a new temporary directory. It is created if needed.
func ArtifactDir(getenv func(string) string) (string, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	dir := getenv("EXTENSION_ARTIFACT_DIR")
	if dir == "" {
		dir = getenv("ARTIFACT_DIR")
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "egress-flow-matrix-")
		if err != nil {
			return "", fmt.Errorf("create a temporary artifact directory: %w", err)
		}
		return d, nil
	}
	dir = filepath.Join(dir, "egress-flow-matrix")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create artifact directory %s: %w", dir, err)
	}
	return dir, nil
}

// WriteArtifact writes data to dir/name, creating subdirectories.
func WriteArtifact(dir, name string, data []byte) error {
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("artifact %s: %w", p, err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		return fmt.Errorf("artifact %s: %w", p, err)
	}
	return nil
}

// WriteJSONArtifact writes v as indented JSON to dir/name.
func WriteJSONArtifact(dir, name string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("artifact %s: %w", name, err)
	}
	return WriteArtifact(dir, name, append(data, '\n'))
}
