"""A calculator service: a long-running behavior that answers requests
sent to it as messages.

The service is one behavior that loops on ``receive``: each request is a
message on the tag ``"calc"`` saying who asked, a sequence number, an
operator and two operands; the answer goes back as a message on the
asker's own reply tag. Messages are copied between interpreters, so the
service and its clients share nothing but the queues.

Two clients use it at the same time:

* the main thread, which sends a batch of requests first and collects the
  replies afterwards (replies to one client come back in request order:
  one queue per tag, first in first out);
* a client behavior running on another worker, which uses each answer to
  build its next request (a running total), waiting for every reply with a
  timeout and a fallback (``after``) in case the service were gone.

A message on ``"shutdown"`` ends the service; it reports how many requests
it served. The service occupies a worker for its whole life, so this
example starts the runtime with at least two workers.

Run:  python examples/calculator.py
"""

from bocpy import WORKER_COUNT, receive, send, start, wait, when

REQUESTS = [
    ("+", 1, 2),
    ("-", 10, 4),
    ("*", 6, 7),
    ("/", 22, 7),
    ("//", 22, 7),
    ("%", 22, 7),
    ("**", 2, 10),
    ("/", 7, 0),
    ("^", 2, 3),
]
TOTAL_OF = 10  # the client behavior adds 1 + 2 + ... + TOTAL_OF


def apply(op, a, b):
    """Evaluate one request; raises for an unknown operator or a division
    by zero."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return a / b
    if op == "//":
        return a // b
    if op == "%":
        return a % b
    if op == "**":
        return a**b
    raise ValueError(f"unknown operator {op!r}")


def serve():
    """The service loop: answer requests until told to shut down."""
    served = 0
    while True:
        tag, message = receive(["shutdown", "calc"])
        if tag == "shutdown":
            send("served", served)
            return served
        client, seq, op, a, b = message
        try:
            reply = ("ok", apply(op, a, b))
        except (ArithmeticError, ValueError) as exc:
            reply = ("error", str(exc))
        send("reply:" + client, (seq, reply))
        served += 1


def ask(client, seq, op, a, b):
    """Send one request and wait for its answer (one request in flight)."""
    send("calc", (client, seq, op, a, b))
    _, (got_seq, (status, value)) = receive(
        "reply:" + client, 30, after=lambda: ("timeout", (seq, ("error", "no answer")))
    )
    assert got_seq == seq
    if status != "ok":
        raise RuntimeError(value)
    return value


start(worker_count=max(2, WORKER_COUNT))


@when()
def service():
    return serve()


@when()
def running_total():
    total = 0
    for i in range(1, TOTAL_OF + 1):
        total = ask("totaller", i, "+", total, i)
    send("total", total)


# The main thread is a client too: send everything, then collect.
for seq, (op, a, b) in enumerate(REQUESTS):
    send("calc", ("main", seq, op, a, b))
for seq, (op, a, b) in enumerate(REQUESTS):
    _, (got_seq, (status, value)) = receive("reply:main", 30)
    assert got_seq == seq, "replies to one client arrive in order"
    if status == "ok":
        if isinstance(value, float):
            value = round(value, 6)
        print(f"{a} {op} {b} = {value}")
    else:
        print(f"{a} {op} {b} -> error: {value}")

_, total = receive("total", 30)
print(f"client behavior: 1 + 2 + ... + {TOTAL_OF} = {total}")

send("shutdown", None)
_, served = receive("served", 30)
wait()
print(f"service answered {served} requests "
      f"({len(REQUESTS)} from main, {TOTAL_OF} from the client behavior)")
print(f"service behavior returned: {service.value}")
