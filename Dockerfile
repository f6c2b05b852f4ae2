# Payload image for the egress-tests-ext openshift-tests extension.
# openshift-tests finds the binary by this path in the image of the payload tag.
FROM registry.ci.openshift.org/ocp/builder:rhel-9-golang-1.26-openshift-4.21 AS builder
WORKDIR /go/src/github.com/openshift/egress-tests-ext
COPY . .
# `make dist` builds with the OTE version ldflags and gzips to bin/egress-tests-ext.gz.
RUN make dist

FROM registry.ci.openshift.org/ocp/4.21:base-rhel9
COPY --from=builder /go/src/github.com/openshift/egress-tests-ext/bin/egress-tests-ext.gz /usr/bin/egress-tests-ext.gz
LABEL io.k8s.display-name="OpenShift egress flow matrix tests" \
      io.k8s.description="openshift-tests extension that records the connections leaving the cluster and diffs them against a documented baseline" \
      io.openshift.release.operator=true \
      io.openshift.tags="openshift,tests,e2e,e2e-extension,network,egress"
