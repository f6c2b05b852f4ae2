# Test image of the egress-tests-ext openshift-tests extension. Not a payload image: it
# carries no /manifests and no io.openshift.release.operator label. openshift-tests finds the
# binary through an ImageStreamTag annotated testextension.redhat.io/binary (README,
# "Through openshift-tests"); the Prow steps of ci/ run it from here too.
# go.mod needs Go 1.26: the Go 1.26 builders are those of OpenShift 4.22 and later.
FROM registry.ci.openshift.org/ocp/builder:rhel-9-golang-1.26-openshift-4.22 AS builder
WORKDIR /go/src/github.com/openshift/egress-tests-ext
COPY . .
# `make dist` builds with the OTE version ldflags (GO_COMPLIANCE_POLICY=exempt_all) and gzips
# to bin/egress-tests-ext.gz, the form openshift-tests extracts.
RUN make dist

FROM registry.ci.openshift.org/ocp/4.22:base-rhel9
COPY --from=builder /go/src/github.com/openshift/egress-tests-ext/bin/egress-tests-ext.gz /usr/bin/egress-tests-ext.gz
LABEL io.k8s.display-name="OpenShift egress flow matrix tests" \
      io.k8s.description="openshift-tests extension that records the connections leaving the cluster and diffs them against a documented baseline" \
      io.openshift.tags="openshift,tests,e2e,e2e-extension,network,egress"
