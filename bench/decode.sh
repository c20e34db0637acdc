#!/usr/bin/env bash
# decode.sh - decode + transform throughput and peak RSS for generated
# Debezium customers events, with and without the schema envelope.
# Figures only; nothing here passes or fails on speed.
set -eu
cd "$(dirname "$0")/.."
bin=build/bench/bench_decode
[ -x "$bin" ] || make -s "$bin"
"$bin" "${DECODE_BARE_EVENTS:-2000000}" "${DECODE_ENVELOPE_EVENTS:-1000000}"
