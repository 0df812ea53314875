"""Records the red-packet story with Celery on a real RabbitMQ broker and the
unmodified opentelemetry-instrumentation-celery.

    python record_celery.py OUT_DIR     (a RabbitMQ node on 127.0.0.1:$RABBITMQ_PORT)

The order service (this process) calls `grant_red_packet.delay(order)`; the
red-packet worker (`celery worker`, prefork pool of one process, a child
of this script) runs it. Faults are real: a task that fails (acknowledged
before it ran, Celery's default), a task that fails once and is retried, the
worker's pool process killed with SIGKILL in the middle of a task (Celery
reports WorkerLostError and does not run it again). Written to OUT_DIR:

- `spans.otlp.jsonl`: every finished span of both processes, OTLP JSON lines;
- `worker.log`: the worker's own log (Celery's format; `worker-log.pattern`
  is the `--log-pattern` that reads it);
- `ledger.json`: the ground truth (see ../rabbitmq/record_pika.py).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "common"))

from story import granted, until  # noqa: E402


def worker(out):
    env = dict(os.environ, LASTHOP_REC_OUT=str(out))
    log = open(out / "worker.log", "a", encoding="utf-8")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool=prefork", "--concurrency=1",
         "--loglevel=INFO", "--without-heartbeat", "--without-mingle", "--without-gossip"],
        cwd=HERE, env=env, stdout=log, stderr=log)






def main(out):
    out.mkdir(parents=True, exist_ok=True)
    for f in out.iterdir():
        f.unlink()
    os.environ["LASTHOP_REC_OUT"] = str(out)
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE.parent / "common"))
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from otlp_json_file import tracer_provider
    import tasks

    provider = tracer_provider("order-service", str(out / "spans.otlp.jsonl"))
    CeleryInstrumentor().instrument(tracer_provider=provider)
    with tasks.app.connection_for_write() as conn:
        conn.default_channel.queue_delete("celery")  # start from an empty queue
    ledger = {}

    def pay(i, fault="", truth="delivered", expected="delivered", cause=None, where=None, spans_only=None):
        order = f"ORDER_{i}"
        result = tasks.grant_red_packet.delay(order, fault)
        ledger[order] = {"order": order, "message_id": result.id, "fault": fault or None, "paid": True,
                         "truth": truth, "lost_at": where, "expected": expected, "expected_cause": cause,
                         "expected_spans_only": spans_only or expected}

    w = worker(out)
    for i in (1, 2, 3):
        pay(i)
    # A failing task: Celery acknowledged it when it started; nothing retries it.
    pay(4, fault="fail", truth="lost", where="consumer", expected="lost_at_consumer", cause="failed_but_acked")
    # Fails once, retried (autoretry_for), then granted.
    pay(5, fault="fail-once")
    assert until(lambda: {"ORDER_1", "ORDER_2", "ORDER_3", "ORDER_5"} <= granted(out)), "the first orders were not granted"
    time.sleep(1.2)
    # The pool process is killed in the middle of a task it had acknowledged.
    # The worker's log says it received ORDER_6; the run span died with the process.
    pay(6, fault="slow", truth="lost", where="consumer", expected="lost_at_consumer",
        cause="committed_before_processed", spans_only="lost_in_transit")
    started = out / "started-ORDER_6"
    assert until(lambda: started.exists() and started.read_text()), "ORDER_6 never started"
    pay(7)  # waits in the worker's prefetch while ORDER_6 runs
    time.sleep(0.3)
    os.kill(int(started.read_text()), signal.SIGKILL)
    time.sleep(1.2)
    for i in (8, 9, 10):
        pay(i)
    assert until(lambda: {f"ORDER_{i}" for i in (7, 8, 9, 10)} <= granted(out)), "later orders were not granted"
    time.sleep(0.5)  # the last run spans are written as the tasks end
    w.send_signal(signal.SIGTERM)
    w.wait(timeout=30)
    provider.shutdown()

    got = granted(out)
    for order, entry in ledger.items():
        entry["granted"] = order in got
        if (entry["truth"] == "delivered") != entry["granted"]:
            raise SystemExit(f"{order}: ledger says granted={entry['granted']}, the story needs {entry['truth']}")
    import celery

    meta = {
        "broker": "RabbitMQ (Debian rabbitmq-server)",
        "client": f"celery {celery.__version__}",
        "instrumentation": "opentelemetry-instrumentation-celery (unmodified; see ../requirements.txt)",
        "grace_seconds": 1,
        "orders": ledger,
    }
    (out / "ledger.json").write_text(json.dumps(meta, indent=2) + "\n")
    for f in out.glob("started-*"):
        f.unlink()
    print(f"recorded {len(ledger)} orders in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
