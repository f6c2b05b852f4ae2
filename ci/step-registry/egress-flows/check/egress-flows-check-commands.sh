#!/bin/bash
set -o nounset
set -o errexit
set -o pipefail

if test -f "${SHARED_DIR}/proxy-conf.sh"; then
  # shellcheck disable=SC1091
  source "${SHARED_DIR}/proxy-conf.sh"
fi
export KUBECONFIG="${SHARED_DIR}/kubeconfig"

bin=/tmp/egress-tests-ext
gzip -dc /usr/bin/egress-tests-ext.gz > "${bin}"
chmod +x "${bin}"

# No record means the capture never started: a window of the spec's own would not cover the
# run, so fail here (exit 2) rather than report on it.
"${bin}" capture status | tee "${ARTIFACT_DIR}/egress-capture-status.txt"

# The spec writes its artifacts under $ARTIFACT_DIR/egress-flow-matrix; run-suite exits
# non-zero only for a blocking failure, an informing one is in the JUnit and the results.
results="${ARTIFACT_DIR}/egress-flows-results.jsonl"
"${bin}" run-suite openshift/network/egress-flows -o jsonl \
  --junit-path "${ARTIFACT_DIR}/junit_egress_flows.xml" | tee "${results}"

if [[ "${EGRESS_CHECK_STRICT}" == "true" ]] && grep -q '"result":"failed"' "${results}"; then
  echo "egress-flows-check: the spec failed (informing); see ${ARTIFACT_DIR}/egress-flow-matrix" >&2
  exit 1
fi
