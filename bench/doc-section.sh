#!/usr/bin/env bash
# Prints the table part of docs/benchmarks.md's "Side by side with Argo Workflows" section from
# docs/bench/table.md (compare.sh's output), so the document can be refreshed after a new run:
#   bash bench/doc-section.sh > /tmp/table-part.md
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
printf '\n### The table\n\n'
printf 'Ratios are zen-flow / Argo: below 1 is better for zen-flow except for flows/min and\n'
printf 'succeeded flows. "dep done -> dependent created" is per step with dependencies, from its\n'
printf 'last dependency done to its own Job or pod first seen.\n\n'
cat "$here/../docs/bench/table.md"
