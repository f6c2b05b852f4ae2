//go:build tools

package tools

import (
	_ "github.com/netobserv/flowlogs-pipeline/cmd/flowlogs-pipeline"
	_ "github.com/netobserv/netobserv-ebpf-agent/cmd"
)
