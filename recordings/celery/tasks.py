"""The red-packet service as a Celery task, on RabbitMQ. Imported by the
worker (`celery -A tasks worker`) and by the order service (record_celery.py).
Each worker pool process is instrumented with opentelemetry-instrumentation-celery,
unmodified, when LASTHOP_REC_OUT names where its spans go."""

import os
import sys
import time
from pathlib import Path

from celery import Celery
from celery.signals import worker_process_init

PORT = int(os.environ.get("RABBITMQ_PORT", "5679"))
app = Celery("tasks", broker=f"amqp://guest:guest@127.0.0.1:{PORT}//")
# Celery's defaults: a task is acknowledged when it starts (acks_late off).
app.conf.update(worker_prefetch_multiplier=4, broker_connection_retry_on_startup=True)


class RedPacketServiceTimeout(Exception):
    pass


def _out():
    return Path(os.environ["LASTHOP_REC_OUT"])


@worker_process_init.connect
def instrument(**_):
    # Each pool process traces on its own, as the instrumentation's docs ask.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "common"))
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from otlp_json_file import tracer_provider

    provider = tracer_provider("red-packet-worker", str(_out() / "spans.otlp.jsonl"))
    CeleryInstrumentor().instrument(tracer_provider=provider)


def _grant(order):
    with open(_out() / "granted.txt", "a", encoding="utf-8") as f:
        f.write(order + "\n")
        f.flush()
        os.fsync(f.fileno())


@app.task(name="tasks.grant_red_packet", bind=True, autoretry_for=(RedPacketServiceTimeout,),
          max_retries=1, default_retry_delay=0.2)
def grant_red_packet(self, order, fault=""):
    if fault == "slow":
        (_out() / f"started-{order}").write_text(str(os.getpid()))
        time.sleep(30)  # the worker is killed meanwhile
    if fault == "fail-once" and self.request.retries == 0:
        raise RedPacketServiceTimeout("red-packet service timed out")
    if fault == "fail":
        # Not retried: a plain task failure, acknowledged before it ran.
        raise ValueError("red-packet service rejected the order")
    _grant(order)
    return order
