//go:build !netlabdev

// Package netobserv runs the real NetObserv eBPF agent and flowlogs-pipeline.
//
// SHIM: the lab-tools branch provides the real package; this file only holds its API so
// that internal/netlab builds until it is merged, and is deleted then.
package netobserv

import (
	"errors"
	"time"
)

// Endpoint is one address FLP enriches with Kubernetes fields.
type Endpoint struct{ Addr, Namespace, Name, OwnerName, OwnerType, Type, HostIP, HostName string }

// SubnetLabel is one FLP subnet label.
type SubnetLabel struct {
	Name  string
	CIDRs []string
}

// FLPConfig configures flowlogs-pipeline.
type FLPConfig struct {
	GRPCPort, MetricsPort int
	LokiURL               string
	Endpoints             []Endpoint
	SubnetLabels          []SubnetLabel
	Prom                  any
}

// AgentConfig configures one agent.
type AgentConfig struct {
	AgentIP            string
	Interfaces         []string
	TargetPort         int
	CacheActiveTimeout time.Duration
	CacheMaxFlows      int
	DNSTracking        bool
	Sampling           int
	Env                map[string]string
}

// Process is a running program.
type Process struct{}

var errShim = errors.New("netobserv: the lab-tools package is not merged yet")

// StartFLP starts FLP.
func StartFLP(bin string, cfg FLPConfig, dir string) (*Process, error) { return nil, errShim }

// StartAgent starts an agent.
func StartAgent(bin string, cfg AgentConfig, dir string) (*Process, error) { return nil, errShim }

// Stop ends the process.
func (p *Process) Stop() error { return nil }

// Log returns its log.
func (p *Process) Log() string { return "" }

// Versions are the agent and FLP versions.
func Versions() (agent, flp string) { return "", "" }

// CheckCapabilities says which capability is missing.
func CheckCapabilities() error { return errShim }
