#!/usr/bin/env bash
# decode.sh - decode + transform throughput and peak RSS for generated
# Debezium customers events: JSON with and without the schema envelope, and
# Avro (registry-framed, as the AvroConverter writes them), with the ratios.
# Figures only; nothing here passes or fails on speed.
set -eu
cd "$(dirname "$0")/.."
bin=build/bench/bench_decode
[ -x "$bin" ] || make -s "$bin"
"$bin" "${DECODE_BARE_EVENTS:-2000000}" "${DECODE_ENVELOPE_EVENTS:-1000000}" "${DECODE_AVRO_EVENTS:-2000000}"
