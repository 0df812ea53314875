#!/usr/bin/env bash
# Makes the recordings of real client libraries against a real broker that
# lasthop's tests judge (crates/lasthop/tests/recordings.rs): RabbitMQ from
# Debian, pika and Celery with their unmodified OpenTelemetry
# instrumentation from PyPI (requirements.txt). CI does not run this: it
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
echo "recordings written under $here"
