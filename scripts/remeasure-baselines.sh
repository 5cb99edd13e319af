#!/usr/bin/env bash
# Re-measure the baseline tables of docs/baselines.md and the README in one run, beside `custom`, on this machine's
# CPU: the full-size cascade (sequential and sentence mode) and Seamless M4T v2 with random weights (latency only)
# and our `custom` model, in float32 and, where the CPU multiplies bf16 natively (dtype=auto picks it: AMX or
# AVX-512 BF16), in bfloat16 too; then the stage table and the bf16-vs-float32 matmul evidence.
#
#   scripts/remeasure-baselines.sh                # on a quiet machine: 3 telugu-mini-qa test questions
#   LIMIT=1 scripts/remeasure-baselines.sh        # a quick end-to-end check
#
# Needs `make install` first and about 16 GB of free memory (every model stays loaded for the whole run). Expect
# about 15-30 minutes on a 2-core CPU. Environment: LIMIT (3), DATA (telugu-mini-qa), OUT
# (reports/runs/baselines-remeasure), THREADS (torch's default) for the cascade and Seamless (custom keeps its
# own default of 1), SKIP_BENCH=1 to skip `python -m backends.bench_dtype`.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
LIMIT=${LIMIT:-3}
DATA=${DATA:-telugu-mini-qa}
OUT=${OUT:-reports/runs/baselines-remeasure}
THREADS=${THREADS:-$("$BIN/python" -c 'import torch; print(torch.get_num_threads())')}
AUTO=$("$BIN/python" -c 'from backends._dtype import resolve_dtype; print(resolve_dtype("cascade", "auto", "cpu").resolved)')

echo "== machine"
lscpu 2>/dev/null | grep -E '^(Model name|CPU\(s\)|Thread\(s\) per core)' || true
"$BIN/python" - <<'EOF'
from backends._dtype import resolve_dtype
from harness.results import machine_info
info = machine_info()
print("CPU flags:", ", ".join(f"{k}={v}" for k, v in info["cpu_flags"].items()), f"({info['cpu_flags_source']})")
print("cascade dtype=auto on cpu:", resolve_dtype("cascade", "auto", "cpu").reason)
EOF
echo "torch threads for the cascade and Seamless: $THREADS; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

RANDOM_CASCADE="weights=random,device=cpu,max_new_tokens=48,asr_max_new_tokens=24,threads=$THREADS"
DTYPES=(float32)
if [ "$AUTO" = bfloat16 ]; then DTYPES+=(bfloat16); fi
BACKENDS=()
for dtype in "${DTYPES[@]}"; do
  BACKENDS+=(--backend "cascade:$RANDOM_CASCADE,mode=sequential,dtype=$dtype")
  BACKENDS+=(--backend "cascade:$RANDOM_CASCADE,mode=sentence,dtype=$dtype")
done
# Seamless once, in the dtype auto picks: its float32 and bf16 copies together would need ~14 GB on their own.
BACKENDS+=(--backend "seamless:weights=random,device=cpu,max_new_tokens=48,threads=$THREADS,dtype=$AUTO")
for dtype in "${DTYPES[@]}"; do
  BACKENDS+=(--backend "custom:dtype=$dtype")
done

rm -rf "$OUT"
echo "== $BIN/s2s-bench run ${BACKENDS[*]} --data $DATA --split test --limit $LIMIT --pacing realtime --timeout 600 --out $OUT"
"$BIN/s2s-bench" run "${BACKENDS[@]}" --data "$DATA" --split test --limit "$LIMIT" --pacing realtime \
  --timeout 600 --out "$OUT"
echo "== stage table"
"$BIN/python" -m backends.stage_table "$OUT"
if [ "${SKIP_BENCH:-0}" != 1 ]; then
  echo "== bf16 vs float32, interleaved (python -m backends.bench_dtype)"
  "$BIN/python" -m backends.bench_dtype
fi
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
