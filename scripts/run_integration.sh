#!/usr/bin/env bash
# run_integration.sh - start the local stack if it is down, then run the pytest integration tests with .venv.
# Prints pytest's closing line last and exits with pytest's code.  Exit 5 ("no tests collected") counts as
# a failure only when tests/integration holds no test file at all.
set -u
cd "$(dirname "$0")/.." || exit 1

# Long-lived servers (the stack) and tests that run make start from here: none of them may hold or
# take a token of a calling make's jobserver, or that make waits forever at its end.
unset MAKEFLAGS MFLAGS MAKELEVEL

PY=.venv/bin/python
[ -x "$PY" ] || { echo "run_integration: .venv missing: run scripts/setup.sh (or make setup)" >&2; exit 1; }

if ! scripts/stack.sh status >/dev/null 2>&1; then
    scripts/stack.sh start || { echo "run_integration: the stack did not start (see above)" >&2; exit 1; }
fi

# The tests drive build/cdcflow and the bench drivers (bench_delta, bench_parquet) as producers of
# tables and files; build them once here rather than racing to build them from inside tests.
make -s -j2 all build/bench/bench_delta build/bench/bench_parquet >/dev/null || { echo "run_integration: build failed" >&2; exit 1; }

ntests=$(find tests/integration -name 'test_*.py' | wc -l)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$PY" -m pytest -q -rs tests/integration "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
if [ "$rc" -eq 5 ]; then
    # No test selected.  With test files present (e.g. a -k filter matched none) that is not a failure
    # of the code; with none at all the run proved nothing.
    if [ "$ntests" -gt 0 ]; then rc=0; else echo "run_integration: no integration test files" >&2; rc=1; fi
fi
# pytest's summary ("3 failed, 10 passed, 1 skipped, 2 errors in 9.1s") as the plain closing line
# "integration: N passed, N failed[, N skipped]"; errors count as failures.
summary=$(grep -E '^(=+ )?([0-9]+ [a-z]+(, )?)+ in [0-9.]+s|no tests ran' "$log" | tail -n1)
count() { sed -nE "s/(^|.*[^0-9])([0-9]+) $1.*/\2/p" <<<"$summary" | head -n1; }
passed=$(count passed) failed=$(count failed) errors=$(count 'errors?') skipped=$(count skipped)
failed=$(( ${failed:-0} + ${errors:-0} ))
# A crash before pytest printed its summary still fails the run.
[ "$rc" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
printf 'integration: %d passed, %d failed%s\n' "${passed:-0}" "$failed" "${skipped:+, $skipped skipped}"
exit "$rc"
