#!/usr/bin/env bash
# Rewrites README.md's ingress-nginx annotation table from the code's
# registry (`sluice migrate --table`); a unit test fails while they differ.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet -p sluice --bin sluice
table="$(target/debug/sluice migrate --table)"
python3 - "$table" <<'PY'
import sys
start, end = "<!-- annotations:start -->\n", "<!-- annotations:end -->"
text = open("README.md").read()
a = text.index(start) + len(start)
b = text.index(end, a)
open("README.md", "w").write(text[:a] + sys.argv[1] + "\n" + text[b:])
PY
