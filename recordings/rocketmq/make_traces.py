"""Writes RocketMQ message-trace records of the red-packet story, encoded as
RocketMQ's Java client encodes them (TraceDataEncoder.encoderFromContextBean:
fields joined by 0x01, each record ended by 0x02; MessageType and
ConsumeReturnType by ordinal; LocalTransactionState by name), with the
services' application logs beside them and the ground truth.

    python make_traces.py OUT_DIR

No RocketMQ broker runs on this machine, so these are not recorded from one:
the story is written as a broker's trace topic would hold it. The producer's
records (`Pub`, `EndTransaction`) go to producer.trace and the consumer's
(`SubBefore`, `SubAfter`, which carry no topic) to consumer.trace, as two
clients would write them, so the analyzer has to join them by msgId across
files.
"""

import json
import sys
from pathlib import Path

FIELD, END = "\x01", "\x02"
T0 = 1_763_700_000_000  # 2025-11-21T04:40:00Z, ms
BROKER = "10.0.0.1:10911"
OK, TIME_OUT, EXCEPTION = 0, 1, 2  # ConsumeReturnType ordinals
NORMAL, HALF = 0, 1  # MessageType ordinals


def offset_msg_id(offset):
    return "0A000001" + "00002A9F" + f"{offset:016X}"  # 10.0.0.1:10911


def record(*fields):
    return FIELD.join(str(f) for f in fields) + END + "\n"


class Story:
    def __init__(self):
        self.producer, self.consumer, self.log = [], [], []
        self.ledger = {}
        self.offset = 0
        self.request = 0

    def pub(self, t, i, msg_type=NORMAL, success=True):
        self.offset += 312
        mid = f"0A00000100002A9F{i:016X}"
        self.producer.append(record("Pub", t, "DefaultRegion", "order-producer", "order_paid", mid,
                                    "paid", f"ORDER_{i}", BROKER, 48, 3, msg_type,
                                    offset_msg_id(self.offset) if success else "", str(success).lower(),
                                    "10.0.0.9"))
        return mid

    def end_tx(self, t, i, mid, state, from_check=False):
        self.producer.append(record("EndTransaction", t, "DefaultRegion", "order-producer", "order_paid",
                                    mid, "paid", f"ORDER_{i}", BROKER, HALF, f"TX{i}", state,
                                    str(from_check).lower()))

    def consume(self, t, i, mid, retry_times=0, success=True, code=OK, log=None):
        self.request += 1
        req = f"REQ{self.request}"
        self.consumer.append(record("SubBefore", t, "DefaultRegion", "red-packet", req, mid, retry_times,
                                    f"ORDER_{i}"))
        self.consumer.append(record("SubAfter", req, mid, 7, str(success).lower(), f"ORDER_{i}", code,
                                    t + 7, "red-packet"))
        if log:
            level, text, outcome = log
            stamp = iso(t + 5)
            self.log.append(f"{stamp} {level} [red-packet-service] [ConsumeMessageThread_1] {text}, "
                            f"msgId={mid} keys=ORDER_{i} group=red-packet outcome={outcome}\n")

    def order(self, i, mid, truth, expected, cause=None, traces_only=None, where=None):
        self.ledger[f"ORDER_{i}"] = {"order": f"ORDER_{i}", "message_id": mid, "paid": True, "truth": truth,
                                     "lost_at": where, "expected": expected, "expected_cause": cause,
                                     "expected_spans_only": traces_only or expected}


def iso(ms):
    import datetime
    t = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M:%S.") + f"{ms % 1000:03d}"


def main(out):
    out.mkdir(parents=True, exist_ok=True)
    s = Story()
    t = T0
    # 1-2: sent and processed.
    for i in (1, 2):
        mid = s.pub(t + i * 10, i)
        s.consume(t + i * 10 + 50, i, mid, log=("INFO", "message processed: red packet granted", "ok"))
        s.order(i, mid, "delivered", "delivered")
    # 3: the listener returns CONSUME_SUCCESS after swallowing the exception;
    # only the application's log says the business code failed.
    mid = s.pub(t + 30, 3)
    s.consume(t + 80, 3, mid, log=("ERROR", "processing failed", "error"))
    s.order(3, mid, "lost", "lost_at_consumer", "failed_but_acked", traces_only="delivered", where="consumer")
    # 4: fails once (RECONSUME_LATER), the retry succeeds.
    mid = s.pub(t + 40, 4)
    s.consume(t + 90, 4, mid, success=False, code=EXCEPTION)
    s.consume(t + 10_090, 4, mid, retry_times=1, log=("INFO", "message processed: red packet granted", "ok"))
    s.order(4, mid, "delivered", "delivered")
    # 5: poison: fails on the first delivery and on all 16 retries: the dead-letter queue.
    mid = s.pub(t + 50, 5)
    for r in range(17):
        s.consume(t + 100 + r * 1_000, 5, mid, retry_times=r, success=False, code=EXCEPTION)
    s.order(5, mid, "lost", "dead_lettered", where="dlq")
    # 6: a send that failed (the producer ignored it).
    mid = s.pub(t + 60, 6, success=False)
    s.order(6, mid, "lost", "lost_at_send", where="send")
    # 7: accepted, stored, never consumed while the group went on.
    mid = s.pub(t + 70, 7)
    s.order(7, mid, "lost", "lost_in_transit", where="broker or consumer")
    # 8: a transaction rolled back.
    mid = s.pub(t + 110, 8, msg_type=HALF)
    s.end_tx(t + 120, 8, mid, "ROLLBACK_MESSAGE")
    s.order(8, mid, "rolled_back", "rolled_back")
    # 9: a transaction committed, then processed.
    mid = s.pub(t + 130, 9, msg_type=HALF)
    s.end_tx(t + 140, 9, mid, "COMMIT_MESSAGE")
    s.consume(t + 200, 9, mid)
    s.order(9, mid, "delivered", "delivered")
    # 10: UNKNOW, then the check-back commits it; processed.
    mid = s.pub(t + 150, 10, msg_type=HALF)
    s.end_tx(t + 160, 10, mid, "UNKNOW")
    s.end_tx(t + 6_160, 10, mid, "COMMIT_MESSAGE", from_check=True)
    s.consume(t + 6_300, 10, mid)
    s.order(10, mid, "delivered", "delivered")
    # 11: UNKNOW and nothing since: still pending.
    mid = s.pub(t + 170, 11, msg_type=HALF)
    s.end_tx(t + 180, 11, mid, "UNKNOW")
    s.order(11, mid, "half_pending", "half_pending")
    # 12-13: later orders, processed: the group went on.
    for i in (12, 13):
        mid = s.pub(t + 20_000 + i, i)
        s.consume(t + 20_100 + i, i, mid, log=("INFO", "message processed: red packet granted", "ok"))
        s.order(i, mid, "delivered", "delivered")
    (out / "producer.trace").write_text("".join(s.producer), encoding="utf-8")
    (out / "consumer.trace").write_text("".join(s.consumer), encoding="utf-8")
    s.log.sort()
    (out / "red-packet.log").write_text("".join(s.log), encoding="utf-8")
    meta = {"broker": "RocketMQ message traces, encoded as its Java client's TraceDataEncoder writes them",
            "client": "none: written by make_traces.py", "grace_seconds": 5, "orders": s.ledger}
    (out / "ledger.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {len(s.ledger)} orders to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
