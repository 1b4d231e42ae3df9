"""Many workers, one log file: records produced in parallel, written in order.

The log is a ``bocpy.plugins.files`` File in a ``PinnedCown``: it never leaves
the main interpreter.  Each record is computed by a worker behavior; a pinned
behavior over (record, log) then writes it on the main thread.  Because every
writer names the log, writers run one at a time in the order they were
scheduled, so records never interleave and the file comes out in order,
however the workers raced.  The File's release hook flushes after every
writer; its destroy hook closes the file when the PinnedCown goes away.

Half the records go through ``files.write_after``: the same thing done by a
behavior whose body is C (the plugin schedules it through the bocpy C ABI).

    python examples/log_writer.py [path] [records]
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile

from bocpy import wait, when
from bocpy.plugins import files


def digest(i: int) -> str:
    """Some work worth a worker: a chain of hashes."""
    h = str(i).encode()
    for _ in range(200):
        h = hashlib.sha256(h).digest()
    return h.hex()[:16]


def main(path: str, records: int) -> None:
    log = files.open(path, "w")  # a PinnedCown holding a File
    for i in range(records):

        @when()
        def record():  # on a worker
            return f"record {i:05d} {digest(i)} worker\n"

        if i % 2 == 0:

            @when(record, log)
            def write(record, log):  # on the main thread
                log.value.write(record.value)

        else:
            files.write_after(log, record)  # a C behavior, also on main
    wait()
    f = log.value
    print(f"wrote {f.records} records ({f.bytes_written} bytes, "
          f"{f.flushes} flushes) to {path}")
    del log, f  # the last handle: the destroy hook closes the file


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        tempfile.gettempdir(), "bocpy-log-writer.log")
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    main(out, n)
    with open(out, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    assert lines == [f"record {i:05d} {digest(i)} worker" for i in range(n)], \
        "records lost, reordered or interleaved"
    print(f"checked: {len(lines)} records, in order, none interleaved")
