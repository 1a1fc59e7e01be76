#!/usr/bin/env bash
# Run each argument as a command at the same time; print each one's output in turn when
# all have ended; fail when any failed. For test runs that wait on their servers more
# than they use the CPU (`make test`: the backends' runs).
set -uo pipefail
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
pids=()
started=$SECONDS
for i in $(seq 1 $#); do
  (bash -c "${!i}"; code=$?; echo $((SECONDS - started)) >"$logs/$i.seconds"; exit $code) >"$logs/$i.log" 2>&1 &
  pids+=($!)
done
status=0
for i in $(seq 1 $#); do
  if ! wait "${pids[$((i - 1))]}"; then
    status=1
  fi
  echo "== ${!i} ($(cat "$logs/$i.seconds" 2>/dev/null || echo '?') s)"
  cat "$logs/$i.log"
done
exit $status
