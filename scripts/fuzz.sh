#!/usr/bin/env bash
# Builds every fuzz target in fuzz/ and runs each for a bounded time on a
# scratch copy of its seed corpus. Exits non-zero when a target crashes
# (a panic, a failed property, an arithmetic overflow, an input that runs
# for 10 s, memory past 2 GB), naming the input and the command that
# reproduces it.
#
#   SLUICE_FUZZ_SECONDS   seconds per target (20: with the build, about
#                         5 minutes from clean on 2 cores)
#   SLUICE_FUZZ_JOBS      targets run at once (the number of CPUs)
#   SLUICE_FUZZ_TARGETS   the targets to run, space-separated (all)
#
# The toolchain is the stable one the rest of the tests use: without a
# sanitizer (`--sanitizer none`) cargo-fuzz passes rustc no unstable flag,
# so no nightly is needed. Rust is memory-safe; what is looked for is
# panics, failed assertions, overflows (`--debug-assertions`), endless
# loops and unbounded memory. README.md, "Fuzzing", has the rest.
#
#   --build-only    install cargo-fuzz if missing and build, no runs
#   --run-only      run what a --build-only built
# (scripts/test.sh builds while the test suites run, which mostly wait on
# sockets, and runs the targets after them.)
set -euo pipefail
cd "$(dirname "$0")/.."

mode=all
case "${1:-}" in
  --build-only) mode=build ;;
  --run-only) mode=run ;;
  "") ;;
  *) echo "fuzz.sh: unknown argument $1 (--build-only, --run-only)" >&2; exit 2 ;;
esac

seconds="${SLUICE_FUZZ_SECONDS:-20}"
jobs="${SLUICE_FUZZ_JOBS:-$(nproc)}"
flags=(--sanitizer none --debug-assertions)
# The version this script was written against; one already installed is used as it is.
cargo_fuzz_version="0.13.2"

if [ "$mode" != run ] && ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz $cargo_fuzz_version"
  start=$(date +%s)
  cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked --quiet
  echo "cargo-fuzz installed in $(($(date +%s) - start)) s"
fi

if [ -n "${SLUICE_FUZZ_TARGETS:-}" ]; then
  read -r -a targets <<<"$SLUICE_FUZZ_TARGETS"
else
  mapfile -t targets < <(cargo fuzz list)
fi

# The fuzz crate is a workspace of its own: its lock file is made from the
# main one whenever that changes (the same versions, plus libfuzzer-sys),
# and is not committed.
if [ ! -e fuzz/Cargo.lock ] || [ Cargo.lock -nt fuzz/Cargo.lock ]; then
  cp Cargo.lock fuzz/Cargo.lock
fi

# One build for every target; each binary is then run as it is (through
# `cargo fuzz run` it would be checked, or rebuilt, inside its time).
bin="fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release"
if [ "$mode" != run ]; then
  start=$(date +%s)
  cargo fuzz build "${flags[@]}"
  echo "fuzz targets built in $(($(date +%s) - start)) s"
fi
[ "$mode" = build ] && exit 0

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# Runs one target; its report goes to $scratch/NAME.report, and
# $scratch/NAME.failed marks a failure.
fuzz_one() {
  local t="$1" log="$scratch/$1.log" report="$scratch/$1.report"
  # Inputs libFuzzer finds go to the scratch copy, never into the repository.
  mkdir -p "$scratch/$t" "fuzz/artifacts/$t"
  cp fuzz/corpus/"$t"/* "$scratch/$t"/
  # -timeout: an input running this long is a hang; -rss_limit_mb: memory
  # past this is a leak or an unbounded allocation. The outer timeout is a
  # backstop should libFuzzer itself not stop.
  if timeout --kill-after=10 $((seconds + 60)) \
    "$bin/$t" -artifact_prefix="fuzz/artifacts/$t/" -max_total_time="$seconds" \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$scratch/$t" \
    >"$log" 2>&1; then
    local runs cov
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
    echo "fuzz $t: ok, ${runs:-?} inputs in $seconds s (${cov:-cov: ?})" >"$report"
    return
  fi
  touch "$scratch/$t.failed"
  {
    echo "fuzz $t: FAILED"
    # The panic (or libFuzzer's own finding: a timeout, out of memory),
    # not the whole backtrace.
    sed -n '/panicked at/,/^stack backtrace/p' "$log" | grep -v '^stack backtrace' || true
    grep -E '^(==[0-9]+== ERROR|SUMMARY|MS:|Base64:)' "$log" || true
    local artifact
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    if [ -n "$artifact" ]; then
      echo "  crashing input: $artifact"
      echo "  reproduce:      cargo fuzz run ${flags[*]} $t $artifact"
      echo "  or on stable, without cargo-fuzz: copy it into fuzz/corpus/$t/ with a file"
      echo "  extension (a seed), then: cargo test -p sluice --lib fuzzing"
    else
      tail -20 "$log"
    fi
  } >"$report"
}

start=$(date +%s)
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
    wait -n || true
  done
  fuzz_one "$t" &
done
wait
echo "fuzz targets ran in $(($(date +%s) - start)) s ($jobs at a time)"

failed=()
for t in "${targets[@]}"; do
  if [ ! -e "$scratch/$t.report" ]; then
    failed+=("$t")
    echo "fuzz $t: FAILED before it ran (see the errors above)" >&2
  elif [ -e "$scratch/$t.failed" ]; then
    failed+=("$t")
    cat "$scratch/$t.report" >&2
  else
    cat "$scratch/$t.report"
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED fuzz target: %s\n' "${failed[@]}" >&2
  exit 1
fi
