"""Records the red-packet story with confluent-kafka (librdkafka) and the
unmodified opentelemetry-instrumentation-confluent-kafka, against a
Kafka-protocol broker (tansu, from crates.io: see ../record.sh).

    python record_confluent.py OUT_DIR     (a broker on $KAFKA_BOOTSTRAP)

The order service (this process) produces `order_paid` records; the
red-packet service (child processes, instrumented on their own) consumes
them in the group `red-packet`. Faults are real: a handler that swallows
its failure and commits, a consumer with auto-commit killed with SIGKILL in
the middle of a record (auto-commit had already committed it), a record
larger than the producer allows. Written to OUT_DIR: `spans.otlp.jsonl`,
`red-packet.log` (the service's own log) and `ledger.json` (ground truth, as
in ../rabbitmq/record_pika.py).

The instrumentation records neither a message id both sides know nor the
record's key, and the consumer's spans start a trace of their own: the log's
ids and keys meet nothing in the spans, so `expected` is what the spans
alone allow.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "common"))

from otlp_json_file import tracer_provider  # noqa: E402
from story import granted, until  # noqa: E402

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
TOPIC = "order_paid"
GROUP = "red-packet"


def instrumentor(service, out):
    from opentelemetry.instrumentation.confluent_kafka import ConfluentKafkaInstrumentor

    provider = tracer_provider(service, str(out / "spans.otlp.jsonl"))
    return ConfluentKafkaInstrumentor(), provider


def consume(out, auto_commit, stop_after, slow_order):
    inst, provider = instrumentor("red-packet-service", out)
    consumer = inst.instrument_consumer(Consumer({
        "bootstrap.servers": BOOTSTRAP, "group.id": GROUP, "auto.offset.reset": "earliest",
        "enable.auto.commit": auto_commit, "auto.commit.interval.ms": 100,
        # A killed consumer's partitions move on after this, not after the default 45 s.
        "session.timeout.ms": 6000,
    }), tracer_provider=provider)
    consumer.subscribe([TOPIC])
    log = open(out / "red-packet.log", "a", encoding="utf-8")
    ledger = open(out / "granted.txt", "a", encoding="utf-8")

    def line(level, text, record, **extra):
        now = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}"
        headers = dict(record.headers() or [])
        order = headers.get("order_id", b"").decode()
        pairs = " ".join(f"{k}={v}" for k, v in extra.items())
        log.write(f"{stamp} {level} [red-packet-service] [consumer] {text}, msgId={headers.get('msg_id', b'').decode()} "
                  f"keys={order} topic={TOPIC} {pairs}".rstrip() + "\n")
        log.flush()
        return order, headers.get("fault", b"").decode()

    handled = 0
    while not stop_after or handled < stop_after:
        record = consumer.poll(1.0)
        if record is None or record.error():
            continue
        order, fault = line("INFO", "message received", record)
        if order == slow_order:
            time.sleep(30)  # killed meanwhile
        if fault == "swallowed":
            # The bug: the failure is logged and the offset committed anyway.
            line("ERROR", "processing failed", record, outcome="error", error="RedPacketServiceTimeout")
        else:
            ledger.write(order + "\n")
            ledger.flush()
            os.fsync(ledger.fileno())
            line("INFO", "message processed: red packet granted", record, outcome="ok")
        if not auto_commit:
            consumer.commit(record, asynchronous=False)
        handled += 1
    consumer.poll(0.1)  # ends the last record's process span
    consumer.close()
    provider.shutdown()


def run_consumer(out, auto_commit, stop_after=0, slow_order="", wait=True):
    args = [sys.executable, __file__, "consume", str(out), str(int(auto_commit)), str(stop_after), slow_order]
    proc = subprocess.Popen(args, stderr=subprocess.DEVNULL)
    if wait:
        proc.wait(timeout=120)
    return proc


def main(out):
    out.mkdir(parents=True, exist_ok=True)
    for f in out.iterdir():
        f.unlink()
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    try:
        admin.create_topics([NewTopic(TOPIC, num_partitions=1, replication_factor=1)])[TOPIC].result(30)
    except KafkaException:
        pass  # already there
    inst, provider = instrumentor("order-service", out)
    producer = inst.instrument_producer(
        Producer({"bootstrap.servers": BOOTSTRAP, "message.max.bytes": 4096}), tracer_provider=provider)
    ledger = {}

    def pay(i, fault="", truth="delivered", expected="delivered", cause=None, where=None, spans_only=None, size=64):
        order = f"ORDER_{i}"
        mid = f"msg-{i:04d}-{os.urandom(4).hex()}"
        entry = {"order": order, "message_id": None, "library_id": mid, "fault": fault or None, "paid": True,
                 "truth": truth, "lost_at": where, "expected": expected, "expected_cause": cause,
                 "expected_spans_only": spans_only or expected}
        try:
            producer.produce(TOPIC, value=b"x" * size, key=order.encode(),
                             headers={"order_id": order, "msg_id": mid, "fault": fault})
            producer.flush(10)
            entry["produce"] = "delivered to the broker"
        except (BufferError, KafkaException) as e:
            entry["produce"] = f"refused: {e}"
        ledger[order] = entry

    for i in (1, 2, 3):
        pay(i)
    pay(4, fault="swallowed", truth="lost", where="consumer", expected="delivered")
    run_consumer(out, auto_commit=False, stop_after=4)
    assert until(lambda: {"ORDER_1", "ORDER_2", "ORDER_3"} <= granted(out)), "the first orders were not granted"
    time.sleep(1.2)
    # Auto-commit: ORDER_5 is committed while its handler runs, then the consumer is killed.
    pay(5, truth="lost", where="consumer", expected="lost_in_transit")
    for i in (6, 7):
        pay(i)
    victim = run_consumer(out, auto_commit=True, slow_order="ORDER_5", wait=False)
    log = out / "red-packet.log"
    assert until(lambda: log.exists() and "keys=ORDER_5 " in log.read_text()), "ORDER_5 never reached the consumer"
    time.sleep(1.0)  # several auto-commit intervals: its offset is committed
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    # The group lets the killed member go once its session (6 s) times out;
    # tansu answers no DescribeGroups to wait on, so this waits it out.
    time.sleep(10)
    # Larger than the producer's message.max.bytes: refused before it left.
    pay(8, truth="lost", where="send", expected="lost_at_send", size=8192)
    time.sleep(1.2)
    for i in (9, 10, 11):
        pay(i)
    run_consumer(out, auto_commit=False, stop_after=5)  # 6, 7, 9, 10, 11
    assert until(lambda: {f"ORDER_{i}" for i in (6, 7, 9, 10, 11)} <= granted(out)), "later orders were not granted"
    provider.shutdown()

    # The message id lasthop sees is the producer span's context: read it back from the spans.
    ids = {}
    for request in (out / "spans.otlp.jsonl").read_text().splitlines():
        for rs in json.loads(request)["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    if span.get("kind") == 4:
                        ids.setdefault(span["traceId"], f"{span['traceId']}-{span['spanId']}")
    producer_traces = list(ids.values())
    if len(producer_traces) != len(ledger):
        raise SystemExit(f"{len(producer_traces)} producer spans for {len(ledger)} orders")
    got = granted(out)
    for (order, entry), mid in zip(ledger.items(), producer_traces):
        entry["message_id"] = mid
        entry["granted"] = order in got
        if (entry["truth"] == "delivered") != entry["granted"]:
            raise SystemExit(f"{order}: granted={entry['granted']}, the story needs {entry['truth']}")
    import confluent_kafka

    meta = {"broker": "tansu (a Kafka-protocol broker, crates.io)",
            "client": f"confluent-kafka {confluent_kafka.version()[0]} (librdkafka {confluent_kafka.libversion()[0]})",
            "instrumentation": "opentelemetry-instrumentation-confluent-kafka (unmodified; see ../requirements.txt)",
            "grace_seconds": 1, "orders": ledger}
    (out / "ledger.json").write_text(json.dumps(meta, indent=2) + "\n")
    (out / "granted.txt").unlink(missing_ok=True)
    print(f"recorded {len(ledger)} orders in {out}")


if __name__ == "__main__":
    if sys.argv[1] == "consume":
        consume(Path(sys.argv[2]), bool(int(sys.argv[3])), int(sys.argv[4]), sys.argv[5])
    else:
        main(Path(sys.argv[1]).resolve())
