#!/usr/bin/env bash
# `lasthop report` over N generated spans against DuckDB running the
# per-message query on the same spans exported to Parquet, in one run.
#
#   scripts/bench_report_vs_duckdb.sh [SPANS] [WORK_DIR] [FAIL_EVERY]
#
# SPANS defaults to 10000000 (4 spans per message: send, store, receive,
# process). With FAIL_EVERY N, every N-th message's process span is an
# error, so that part of the history is not plainly delivered and lasthop
# judges it from records. The spans are generated once by the collector benchmark (sent
# over OTLP/gRPC into a real collector, which keeps its data); DuckDB builds
# the same rows with the same formulas and writes them to Parquet. Each side
# is timed with /usr/bin/time (wall clock and peak resident memory). DuckDB
# comes from PyPI, into a virtual environment under WORK_DIR.
set -euo pipefail

SPANS=${1:-10000000}
WORK=${2:-target/bench-report}
FAIL_EVERY=${3:-0}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
SUFFIX=$SPANS
if [ "$FAIL_EVERY" != 0 ]; then SUFFIX="$SPANS-fail$FAIL_EVERY"; fi
DATA="$WORK/data-$SUFFIX"
PARQUET="$WORK/spans-$SUFFIX.parquet"

cd "$ROOT"
cargo build --release -p lasthop
if [ ! -d "$DATA/index" ]; then
  echo "generating $SPANS spans into $DATA (collector benchmark) ..."
  # --lookup-only: requests are built as they are sent, not all held first.
  cargo bench -p lasthop-collector --bench collector -- --spans "$SPANS" --lookup-only --keep-data "$DATA" --fail-every "$FAIL_EVERY" > "$WORK/generate-$SUFFIX.log"
fi

if [ ! -x "$WORK/venv/bin/python" ]; then
  python3 -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" install --quiet duckdb
fi
PY="$WORK/venv/bin/python"

if [ ! -f "$PARQUET" ]; then
  echo "writing the same spans to $PARQUET ..."
  "$PY" - "$SPANS" "$PARQUET" "$FAIL_EVERY" <<'EOF'
import sys, duckdb
spans, out, fail_every = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
failed = f"k % 4 = 3 AND (k // 4) % {fail_every} = 0" if fail_every else "false"
# The collector benchmark's generator (crates/collector/benches/collector.rs):
# span k belongs to message k / 4 and is its hop k % 4.
duckdb.sql(f"""
COPY (
  SELECT
    'MSG' || lpad(CAST(k // 4 AS VARCHAR), 12, '0') AS message_id,
    ['send', 'store', 'receive', 'process'][k % 4 + 1] AS hop,
    CASE WHEN k % 4 >= 2 THEN 'red-packet' END AS consumer_group,
    'order_paid' AS topic,
    'broker-a' AS broker,
    3 AS epoch,
    (k // 4) * 320 AS commitlog_offset,
    (k // 4) // 4 AS queue_offset,
    (k // 4) % 4 AS queue_id,
    1763700000000000000 + (k // 4) * 1000000 + (k % 4) * 1000 AS start_ns,
    CASE WHEN {failed} THEN 2 ELSE 0 END AS status
  FROM range({spans}) t(k)
) TO '{out}' (FORMAT parquet)
""")
EOF
fi

cat > "$WORK/duckdb_query.py" <<'EOF'
import sys, duckdb
# Per message and group: which hops it reached, then a verdict, then totals:
# the shape of lasthop's per-message evaluation.
rows = duckdb.sql(f"""
WITH per_message AS (
  SELECT message_id,
         bool_or(hop = 'send') AS sent,
         bool_or(hop = 'store') AS stored,
         bool_or(hop = 'receive') AS received,
         bool_or(hop = 'process' AND status <> 2) AS processed,
         max(consumer_group) AS consumer_group
  FROM read_parquet('{sys.argv[1]}')
  GROUP BY message_id
)
SELECT CASE WHEN processed THEN 'delivered'
            WHEN stored AND received THEN 'lost_at_consumer'
            WHEN stored THEN 'in_flight'
            WHEN sent THEN 'lost_in_transit'
            ELSE 'incomplete_trace' END AS verdict,
       count(*) AS messages
FROM per_message GROUP BY verdict ORDER BY verdict
""").fetchall()
print(rows)
EOF

# The two engines alternate, RUNS times each (the machine is a shared VM);
# the figures are the medians.
RUNS=${RUNS:-5}
: > "$WORK/times-$SUFFIX.txt"
for i in $(seq "$RUNS"); do
  /usr/bin/time -a -o "$WORK/times-$SUFFIX.txt" -f "lasthop %e %M" \
    target/release/lasthop report --data "$DATA" --grace 0 --format json --out "$WORK/report.json" 2>/dev/null
  /usr/bin/time -a -o "$WORK/times-$SUFFIX.txt" -f "duckdb %e %M" \
    "$PY" "$WORK/duckdb_query.py" "$PARQUET" > "$WORK/duckdb.txt"
done
echo
echo "== $SPANS spans (fail every: $FAIL_EVERY), $RUNS runs each, medians"
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
for engine in lasthop duckdb; do
  rows=$(grep "^$engine " "$WORK/times-$SUFFIX.txt")
  wall=$(echo "$rows" | awk '{ print $2 }' | median)
  range=$(echo "$rows" | awk '{ print $2 }' | sort -n | sed -n '1p;$p' | paste -sd ' ')
  rss=$(echo "$rows" | awk '{ print $3 }' | median)
  echo "$engine: $wall s wall (median; fastest and slowest: $range), $rss KiB peak RSS (median)"
done
echo "duckdb: $(cat "$WORK/duckdb.txt")"
echo
"$PY" -c "import json; r = json.load(open('$WORK/report.json')); print('lasthop:', r['totals'])"
