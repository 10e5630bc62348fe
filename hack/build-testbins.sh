#!/usr/bin/env bash
# Builds the test control plane (kube-apiserver, etcd, kubectl, kube-controller-manager), helm,
# hack/kstatus (the upstream kstatus library as a CLI), and Prometheus and promtool (the chart's alerts
# and dashboard are tested with them) from upstream Go modules, cached outside the repo, keyed by
# versions, so a warm machine does not rebuild.
# Prints the directory that holds the binaries.
#
#   hack/build-testbins.sh               build (or reuse) and print the bin dir
#   hack/build-testbins.sh --regenerate  rewrite hack/testbins/go.mod's replace block for K8S_VERSION
#
# KUBEBUILDER_ASSETS pointing at existing envtest binaries (kube-apiserver, etcd, kubectl) is honoured
# instead of building those three; envtest has no kube-controller-manager, so that one, helm and kstatus
# are still built.
set -euo pipefail

K8S_VERSION=1.35.4          # k8s.io/kubernetes v1.35.4, staging modules v0.35.4
HELM_VERSION=v3.21.4
PROMETHEUS_VERSION=v0.316.0 # Prometheus 3.16.0: its Go module numbers 3.x releases v0.3xx.y
here=$(cd "$(dirname "$0")" && pwd)
module="$here/testbins"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0

if [[ "${1:-}" == "--regenerate" ]]; then
  cd "$module"
  gomod=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | python3 -c 'import sys,json;print(json.load(sys.stdin)["GoMod"])')
  for m in $(sed -n 's|^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/.*|\1|p' "$gomod"); do
    go mod edit -replace="$m=$m@v0.${K8S_VERSION#1.}"
  done
  go mod edit -require="k8s.io/kubernetes@v$K8S_VERSION"
  go mod tidy
  exit 0
fi

cache_root="${TESTBINS_CACHE:-$HOME/.cache/together-operator/testbins}"
key=$( { echo "$K8S_VERSION $HELM_VERSION"; go version; cat "$module/go.mod" "$module/go.sum" "$module"/cmd/*/main.go; } | sha256sum | cut -c1-16)
bin="$cache_root/v$K8S_VERSION-$key"
log() { echo "build-testbins: $*" >&2; }

envtest=(kube-apiserver etcd kubectl)
need=("${envtest[@]}" kube-controller-manager)
if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  for b in "${envtest[@]}"; do
    [[ -x "$KUBEBUILDER_ASSETS/$b" ]] || { log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks $b"; exit 1; }
  done
  bin="$bin-envtest"
  need=(kube-controller-manager)
fi

mkdir -p "$bin"
# One build per bin dir at a time: pytest, hack/cluster and the demo may all call this at once.
exec 9>"$bin.lock"
if ! flock -n 9; then
  log "waiting for another build-testbins.sh building into $bin"
  flock 9
fi
if [[ ! -f "$bin/.stamp" ]]; then
  log "building ${need[*]} v$K8S_VERSION into $bin (cold: ~5-30 min on 2 cores)"
  start=$(date +%s)
  # Version stamps as upstream hack/lib/version.sh sets them (without them /version reports
  # v0.0.0-master). 1.35.4 => gitMajor=1 gitMinor=35. gitCommit stays unset: the proxy has no commit.
  major=${K8S_VERSION%%.*} minor=${K8S_VERSION#*.}
  minor=${minor%%.*}
  ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor"
    ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$module" && go build -p 2 -trimpath -ldflags "$ldflags" -o "$bin/" "${need[@]/#/./cmd/}")
  log "${need[*]} built in $(( $(date +%s) - start )) s"
  start=$(date +%s)
  # helm has its own module graph (newer k8s.io libraries), so it is installed outside the testbins module.
  (cd /tmp && GOFLAGS= GOBIN="$bin" go install -trimpath -ldflags "-s -w" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION")
  log "helm built in $(( $(date +%s) - start )) s"
  touch "$bin/.stamp"
fi

# kstatus has its own module and its own stamp (keyed by its sources), so changing it never rebuilds
# the control plane, and changing the control plane's key rebuilds it only as part of a new bin dir.
kstatus_module="$here/kstatus"
kstatus_key=$( { go version; cat "$kstatus_module/go.mod" "$kstatus_module/go.sum" "$kstatus_module"/*.go; } | sha256sum | cut -c1-16)
if [[ ! -f "$bin/.kstatus-$kstatus_key" ]]; then
  start=$(date +%s)
  (cd "$kstatus_module" && go build -trimpath -ldflags "-s -w" -o "$bin/kstatus" .)
  rm -f "$bin"/.kstatus-*
  touch "$bin/.kstatus-$kstatus_key"
  log "kstatus built in $(( $(date +%s) - start )) s"
fi

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  for b in "${envtest[@]}"; do ln -sf "$KUBEBUILDER_ASSETS/$b" "$bin/$b"; done
fi

# Prometheus and promtool: a directory, lock and stamp of their own, keyed by their version, so a new
# Prometheus never rebuilds the control plane and a new control plane reuses them (linked into $bin).
# The control plane's lock is released first: this build should not hold up tests that need only kubectl.
# remove_all_sd leaves out the cloud service discoveries (tests scrape static targets), about half the
# build; without the builtinassets tag the server builds without the web UI's assets.
exec 9>&-
# The release the module version stands for (v0.316.0 => 3.16.0), stamped as Prometheus' Makefile does
# (without it the binaries report an empty version).
prometheus_minor=${PROMETHEUS_VERSION#v0.}
prometheus_release="${prometheus_minor:0:1}.$((10#${prometheus_minor:1:2})).${prometheus_minor#*.}"
prometheus_ldflags="-s -w -X github.com/prometheus/common/version.Version=$prometheus_release"
prometheus_ldflags+=" -X github.com/prometheus/common/version.Branch=HEAD"
prometheus_bin="$cache_root/prometheus-$PROMETHEUS_VERSION-$( { echo "$prometheus_ldflags"; go version; } | sha256sum | cut -c1-16)"
mkdir -p "$prometheus_bin"
exec 8>"$prometheus_bin.lock"
if ! flock -n 8; then
  log "waiting for another build-testbins.sh building into $prometheus_bin"
  flock 8
fi
if [[ ! -f "$prometheus_bin/.stamp" ]]; then
  log "building prometheus and promtool $PROMETHEUS_VERSION into $prometheus_bin (cold: ~5-15 min on 2 cores)"
  start=$(date +%s)
  (cd /tmp && GOFLAGS= GOBIN="$prometheus_bin" go install -trimpath -tags remove_all_sd -ldflags "$prometheus_ldflags" \
    "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION" \
    "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION")
  touch "$prometheus_bin/.stamp"
  log "prometheus and promtool built in $(( $(date +%s) - start )) s"
fi
exec 8>&-
for b in prometheus promtool; do ln -sf "$prometheus_bin/$b" "$bin/$b"; done
echo "$bin"
