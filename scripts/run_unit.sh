#!/usr/bin/env bash
# run_unit.sh - run every unit test executable in DIR and print the total
# closing line "N passed, N failed".  Each executable gets UNIT_TIMEOUT
# seconds (default 300) so one hung test cannot eat a CI run.
set -u
dir=${1:-build/tests}
pass=0 fail=0 bad=()
for t in "$dir"/test_*; do
    [ -x "$t" ] || continue
    out=$(timeout -k 10 "${UNIT_TIMEOUT:-300}" "$t" 2>&1); rc=$?
    [ "$rc" -eq 124 ] && out+=$'\n'"$(basename "$t"): timed out after ${UNIT_TIMEOUT:-300}s"
    printf '%s\n' "$out"
    line=$(printf '%s\n' "$out" | grep -E '[0-9]+ passed, [0-9]+ failed' | tail -n1)
    p=$(sed -E 's/.* ([0-9]+) passed.*/\1/' <<<"$line"); f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
    [ -n "$line" ] || { p=0; f=1; }
    if [ "$rc" -ne 0 ] && [ "${f:-0}" -eq 0 ]; then f=1; fi   # crashed or sanitizer abort
    pass=$((pass + p)); fail=$((fail + f))
    [ "$rc" -eq 0 ] || bad+=("$(basename "$t") (exit $rc)")
done
[ ${#bad[@]} -eq 0 ] || printf 'failing: %s\n' "${bad[*]}"
echo "unit: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
