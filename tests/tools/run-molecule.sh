#!/usr/bin/env bash
# Runs `molecule test` for each scenario named: the shared full-platform scenario (cluster) in the background and
# the per-role scenarios one after another beside it, so that they take no time of their own in `make test`. Each
# scenario has hosts, a network and an ephemeral directory of its own (lab name molecule-<scenario>), and writes
# its whole log to .cache/logs/molecule-<scenario>.log. Every scenario runs even after one fails; at the end come
# the cluster verifier's slowest tests (the time budget of make test) and, for each failed scenario, its failing
# tests and tasks, since CI shows only the tail.
#
#   tests/tools/run-molecule.sh <scenario>...
set -uo pipefail

logs=.cache/logs
mkdir -p "$logs"

run() {
    local scenario=$1 started=$SECONDS status
    COLUMNS=240 molecule test -s "$scenario" > "$logs/molecule-$scenario.log" 2>&1
    status=$?
    echo "=== molecule test -s $scenario: $([ "$status" -eq 0 ] && echo passed || echo FAILED) in $((SECONDS - started)) s"
    return "$status"
}

plain() {
    sed -E 's/\x1b\[[0-9;]*m//g; s/^ *│ ?//' "$logs/molecule-$1.log"
}

failed=()
cluster_job=""
for scenario in "$@"; do
    if [ "$scenario" = cluster ]; then
        run cluster &
        cluster_job=$!
    fi
done
for scenario in "$@"; do
    [ "$scenario" = cluster ] && continue
    run "$scenario" || failed+=("$scenario")
done
if [ -n "$cluster_job" ]; then
    wait "$cluster_job" || failed+=(cluster)
    echo "=== the cluster verifier's slowest tests"
    plain cluster | grep -E '^[0-9.]+s (call|setup|teardown) ' | head -n 15 || true
fi

for scenario in "${failed[@]}"; do
    echo "=== $scenario failed; its whole log is $logs/molecule-$scenario.log"
    plain "$scenario" | grep -E '^(FAILED|ERROR) [^-]|^E  |^fatal: ' | cut -c1-300 | tail -n 40 || true
done
[ ${#failed[@]} -eq 0 ]
