#!/usr/bin/env bash
# Makes the recordings of real client libraries against a real broker that
# lasthop's tests judge (crates/lasthop/tests/recordings.rs): RabbitMQ from
# Debian with pika and Celery, and tansu (a Kafka-protocol broker) with
# confluent-kafka, each with its unmodified OpenTelemetry instrumentation
# from PyPI (requirements.txt). CI does not run this: it
# judges the committed recordings. Run it again to refresh them:
#
#   apt-get install rabbitmq-server && recordings/record.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap '"$here/rabbitmq/rabbitmq.sh" stop "$work/rabbitmq"; rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet -r "$here/requirements.txt"
export RABBITMQ_PORT=${RABBITMQ_PORT:-5679}
"$here/rabbitmq/rabbitmq.sh" start "$work/rabbitmq"
(cd "$here/rabbitmq" && "$work/venv/bin/python" record_pika.py "$here/rabbitmq/pika")
rm -f "$here/rabbitmq/pika/granted.txt"
(cd "$here/celery" && "$work/venv/bin/python" record_celery.py "$here/celery/run")
rm -f "$here/celery/run/granted.txt"
# Kafka: tansu, a Kafka-protocol broker from crates.io (cargo install tansu
# --features libsql, about 25 minutes), on a database of its own.
if command -v tansu > /dev/null; then
  mkdir -p "$work/tansu"
  (cd "$work" && env -u OTEL_EXPORTER_OTLP_ENDPOINT tansu broker --silent \
      --listener-url tcp://127.0.0.1:9094 --advertised-listener-url tcp://127.0.0.1:9094 \
      --storage-engine sqlite://tansu/tansu.db > "$work/tansu.out" 2>&1 &
   echo $! > "$work/tansu.pid")
  for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/9094) 2> /dev/null && break; sleep 0.1; done
  (cd "$here/kafka" && KAFKA_BOOTSTRAP=127.0.0.1:9094 "$work/venv/bin/python" record_confluent.py "$here/kafka/confluent")
  kill "$(cat "$work/tansu.pid")"
else
  echo "tansu is not installed: the Kafka recording is left as it is"
fi
echo "recordings written under $here"
