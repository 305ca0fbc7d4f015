#!/usr/bin/env bash
# The soak (issue 11): a steady rate through churn (endpoint changes,
# reloads, TLS handshakes, WebSockets), failing if a request is lost,
# descriptors leak or memory grows past its bound. The suite runs it for
# 60 s; by hand:
#
#   scripts/soak.sh --duration 1h
#
# It is the test `tests/tests/soak.rs`, run alone with its output shown;
# its figures land in target/reliability/ (see docs/RELIABILITY.md).
set -euo pipefail
cd "$(dirname "$0")/.."

duration=60
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration="$2"; shift 2 ;;
        --duration=*) duration="${1#*=}"; shift ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "soak.sh: unknown argument $1 (try --duration 1h)" >&2; exit 2 ;;
    esac
done
case "$duration" in
    *h) seconds=$(( ${duration%h} * 3600 )) ;;
    *m) seconds=$(( ${duration%m} * 60 )) ;;
    *s) seconds=${duration%s} ;;
    *) seconds=$duration ;;
esac
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 10 ]; then
    echo "soak.sh: --duration must be 10s or more, like 90s, 30m or 1h" >&2
    exit 2
fi
echo "soak: ${seconds} s"
SLUICE_SOAK_SECONDS="$seconds" cargo test -p sluice-integration --test soak -- --nocapture
