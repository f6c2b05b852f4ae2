package lokiflows

import "github.com/openshift/egress-tests-ext/pkg/lokiquery"

// client is the generic Loki client with the egress queries on top: the planner (egress.go,
// shard.go), the raw reads (raw.go), the matrix-key projection in LogQL (project.go), the
// DNS evidence (dns.go) and the ingestion barrier (barrier.go).
type client struct{ *lokiquery.Client }

func newClient(cfg lokiquery.Config) (*client, error) {
	c, err := lokiquery.New(cfg)
	if err != nil {
		return nil, err
	}
	return &client{c}, nil
}
