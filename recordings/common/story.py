"""What both recorders need while a story runs: waiting on a condition (never
a fixed sleep where a condition can be awaited) and reading a service's own
ledger of granted red packets."""

import time


def until(condition, timeout=60):
    """Whether `condition()` became true within `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def granted(out):
    """The orders the consuming service's own ledger (`granted.txt`) holds."""
    path = out / "granted.txt"
    return set(path.read_text().split()) if path.exists() else set()
