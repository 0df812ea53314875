"""Records the red-packet story on a real RabbitMQ broker with pika and the
unmodified opentelemetry-instrumentation-pika: real losses, real spans.

    python record_pika.py OUT_DIR        (a RabbitMQ node on 127.0.0.1:$RABBITMQ_PORT)

The order service (this process) publishes `order_paid` messages through
the default exchange to the queue `red-packet` (the common pika pattern),
with publisher confirms; the red-packet service (child processes of this
script, each instrumented on its own) consumes the queue. Faults are real: a
handler that swallows its failure, a consumer that crashes on an exception,
an auto-ack consumer killed with SIGKILL mid-batch, a routing key that no
queue has (with and without `mandatory`). Written to OUT_DIR:

- `spans.otlp.jsonl`: every finished span of every process, OTLP JSON lines;
- `red-packet.log`: the red-packet service's own application log (logback
  layout with key=value pairs, as such services log);
- `ledger.json`: the ground truth. Per order: its message id, whether the
  order service recorded it paid, whether the red-packet service granted its
  packet (its own ledger, written without tracing), where the fault struck,
  and the verdict the spans and logs allow (DESIGN section 5): `expected`
  from spans and the log together, `expected_spans_only` from spans alone.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pika
from pika.exceptions import UnroutableError

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "common"))

from otlp_json_file import tracer_provider  # noqa: E402
from story import granted, until  # noqa: E402

EXCHANGE = ""  # the default exchange: the routing key names the queue
QUEUE = "red-packet"
KEY = QUEUE
TYPO_KEY = "red-packett"  # no such queue
PORT = int(os.environ.get("RABBITMQ_PORT", "5679"))


def params():
    return pika.ConnectionParameters(host="127.0.0.1", port=PORT, heartbeat=0)


def instrument(service, out):
    from opentelemetry.instrumentation.pika import PikaInstrumentor

    provider = tracer_provider(service, str(out / "spans.otlp.jsonl"))
    PikaInstrumentor().instrument(tracer_provider=provider)
    return provider


def message_id(i):
    return f"msg-{i:04d}-{os.urandom(4).hex()}"


# ---- the red-packet service (a child process) -----------------------------


class RedPacketServiceTimeout(Exception):
    pass


def consume(out, mode, stop_after, slow_order):
    """Consumes until `stop_after` orders were handled (or forever).
    mode: `manual` (ack after processing) or `auto` (auto_ack, the hazard)."""
    instrument("red-packet-service", out)
    log = open(out / "red-packet.log", "a", encoding="utf-8")
    granted = open(out / "granted.txt", "a", encoding="utf-8")
    attempts_file = out / "attempts.json"

    def line(level, text, props, **extra):
        now = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}"
        order = (props.headers or {}).get("order_id", "")
        pairs = " ".join(f"{k}={v}" for k, v in extra.items())
        log.write(
            f"{stamp} {level} [red-packet-service] [consumer] {text}, "
            f"msgId={props.message_id} keys={order} topic={QUEUE} group={QUEUE} {pairs}".rstrip()
            + "\n"
        )
        log.flush()

    def grant(order):
        granted.write(order + "\n")
        granted.flush()
        os.fsync(granted.fileno())

    handled = 0
    connection = pika.BlockingConnection(params())
    channel = connection.channel()
    channel.basic_qos(prefetch_count=10)

    def on_message(ch, method, props, body):
        nonlocal handled
        order = props.headers.get("order_id")
        fault = props.headers.get("fault", "")
        attempts = json.loads(attempts_file.read_text()) if attempts_file.exists() else {}
        attempts[order] = attempts.get(order, 0) + 1
        attempts_file.write_text(json.dumps(attempts))
        line("INFO", "message received", props, redelivered=str(method.redelivered).lower())
        if order == slow_order:
            time.sleep(30)  # killed with SIGKILL meanwhile
        if fault == "swallowed":
            try:
                raise RedPacketServiceTimeout("red-packet service timed out")
            except RedPacketServiceTimeout as e:
                # The bug the story is about: the failure is logged and the message acked anyway.
                line("ERROR", "processing failed", props, outcome="error", error=type(e).__name__)
        elif fault == "crash-once" and attempts[order] == 1:
            line("ERROR", "processing failed", props, outcome="error", error="RedPacketServiceTimeout")
            raise RedPacketServiceTimeout("red-packet service timed out")
        elif fault == "crash":
            line("ERROR", "processing failed", props, outcome="error", error="RedPacketServiceTimeout")
            raise RedPacketServiceTimeout("red-packet service timed out")
        else:
            grant(order)
            line("INFO", "message processed: red packet granted", props, outcome="ok")
        if mode == "manual":
            ch.basic_ack(method.delivery_tag)
        handled += 1
        if stop_after and handled >= stop_after:
            ch.stop_consuming()

    channel.basic_consume(QUEUE, on_message, auto_ack=(mode == "auto"))
    channel.start_consuming()
    connection.close()


# ---- the order service (this process) and the story ----------------------


def run_consumer(out, mode, stop_after=0, slow_order="", wait=True):
    args = [sys.executable, __file__, "consume", str(out), mode, str(stop_after), slow_order]
    proc = subprocess.Popen(args, stderr=subprocess.DEVNULL)
    if wait:
        proc.wait(timeout=60)
    return proc






def received(out, order):
    log = out / "red-packet.log"
    return log.exists() and f"keys={order} " in log.read_text()


def main(out):
    out.mkdir(parents=True, exist_ok=True)
    for name in ("spans.otlp.jsonl", "red-packet.log", "granted.txt", "attempts.json"):
        (out / name).unlink(missing_ok=True)
    provider = instrument("order-service", out)
    connection = pika.BlockingConnection(params())
    channel = connection.channel()
    channel.queue_declare(QUEUE, durable=True)
    channel.queue_purge(QUEUE)
    channel.confirm_delivery()
    ledger = {}

    def pay(i, fault="", key=KEY, mandatory=False, truth="delivered", expected="delivered", cause=None,
            where=None, spans_only=None):
        order = f"ORDER_{i}"
        mid = message_id(i)
        entry = {"order": order, "message_id": mid, "fault": fault or None, "paid": True,
                 "truth": truth, "lost_at": where, "expected": expected, "expected_cause": cause,
                 "expected_spans_only": spans_only or expected}
        props = pika.BasicProperties(message_id=mid, delivery_mode=2,
                                     headers={"order_id": order, "fault": fault})
        try:
            channel.basic_publish(EXCHANGE, key, json.dumps({"order": order}).encode(), props, mandatory=mandatory)
            entry["publish"] = "confirmed"
        except UnroutableError:
            # The order service logs the failure and goes on: the order is paid, no message left.
            entry["publish"] = "returned unroutable"
        ledger[order] = entry

    # 1. Orders that go through.
    for i in (1, 2, 3):
        pay(i)
    # 2. A failure swallowed by the handler: the trace says success, the log says otherwise.
    pay(4, fault="swallowed", truth="lost", where="consumer", expected="lost_at_consumer", cause="failed_but_acked",
        spans_only="delivered")
    # 3. A crash on the first attempt, acked only after processing: redelivered, then granted.
    pay(5, fault="crash-once")
    run_consumer(out, "manual", stop_after=4)  # handles 1-4 and stops
    run_consumer(out, "manual", stop_after=1)  # crashes on 5 (not acked)
    run_consumer(out, "manual", stop_after=1)  # 5 again, redelivered: granted
    assert until(lambda: "ORDER_5" in granted(out)), "ORDER_5 was not redelivered"
    time.sleep(1.2)  # spans of different phases a grace period apart

    # 4. The auto-ack hazard: a failure after the broker already forgot the message.
    pay(6, fault="crash", truth="lost", where="consumer", expected="lost_at_consumer", cause="failed_but_acked")
    run_consumer(out, "auto", stop_after=1)
    # 5. An auto-ack consumer killed mid-batch: prefetched, acked, never processed.
    # The consumer logged receiving ORDER_7 (its log says so; its spans do
    # not, the span of a killed handler never ends); ORDER_8 and ORDER_9
    # never reached the handler.
    pay(7, truth="lost", where="consumer", expected="lost_at_consumer", cause="committed_before_processed",
        spans_only="lost_in_transit")
    for i in (8, 9):
        pay(i, truth="lost", where="consumer", expected="lost_in_transit")
    victim = run_consumer(out, "auto", slow_order="ORDER_7", wait=False)
    assert until(lambda: received(out, "ORDER_7")), "ORDER_7 never reached the consumer"
    time.sleep(0.3)  # ORDER_8 and ORDER_9 are in the client's prefetch buffer by now
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    time.sleep(1.2)

    # 6. A routing key no queue is bound to: returned (mandatory), or dropped silently.
    pay(10, key=TYPO_KEY, mandatory=True, truth="lost", where="send", expected="lost_at_send")
    # No consumer in the data reads that queue: the spans cannot say more than "accepted".
    pay(11, key=TYPO_KEY, truth="lost", where="broker", expected="incomplete_trace")
    time.sleep(1.2)
    # 7. Later orders go through: the group went on.
    for i in (12, 13, 14):
        pay(i)
    run_consumer(out, "manual", stop_after=3)
    connection.close()
    provider.shutdown()

    got = granted(out)
    for order, entry in ledger.items():
        entry["granted"] = order in got
        if entry["truth"] == "delivered" and not entry["granted"]:
            raise SystemExit(f"{order} should have been granted: the recording went wrong")
        if entry["truth"] == "lost" and entry["granted"]:
            raise SystemExit(f"{order} was granted: the fault did not strike")
    meta = {
        "broker": "RabbitMQ (Debian rabbitmq-server)",
        "client": f"pika {pika.__version__}",
        "instrumentation": "opentelemetry-instrumentation-pika (unmodified; see ../requirements.txt)",
        "grace_seconds": 1,
        "orders": ledger,
    }
    (out / "ledger.json").write_text(json.dumps(meta, indent=2) + "\n")
    (out / "attempts.json").unlink(missing_ok=True)
    print(f"recorded {len(ledger)} orders in {out}")


if __name__ == "__main__":
    if sys.argv[1] == "consume":
        consume(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5])
    else:
        main(Path(sys.argv[1]))
