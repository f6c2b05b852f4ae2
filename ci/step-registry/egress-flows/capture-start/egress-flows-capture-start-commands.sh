#!/bin/bash
set -o nounset
set -o errexit
set -o pipefail

# Proxied and disconnected jobs reach the API server through the proxy the install left.
if test -f "${SHARED_DIR}/proxy-conf.sh"; then
  # shellcheck disable=SC1091
  source "${SHARED_DIR}/proxy-conf.sh"
fi
export KUBECONFIG="${SHARED_DIR}/kubeconfig"

# The image carries the binary gzipped, where openshift-tests extracts it from.
bin=/tmp/egress-tests-ext
gzip -dc /usr/bin/egress-tests-ext.gz > "${bin}"
chmod +x "${bin}"

# Exit 2 (and nothing left installed) when the install fails or no flow reaches Loki.
"${bin}" capture start | tee "${ARTIFACT_DIR}/egress-capture-start.txt"
