"""Coarse-grained pinned dispatch: parallel work per item, one main-thread
write-back per frame.

A "canvas" stands for something that must never leave the main thread (a GUI
widget, a GPU context): here an object holding an open file and a lock,
neither of which can be pickled.  It lives in a PinnedCown.

Each frame, one worker behavior per cell moves that cell's particles; then a
single pinned behavior, naming every cell's result cown and the canvas, runs
on the main thread and draws the whole frame at once.  The main thread is
touched once per frame, not once per cell.

Run:  python examples/pinned_frames.py   (no display needed)
"""

import tempfile
import threading

from bocpy import Cown, PinnedCown, wait, when

CELLS = 8
PARTICLES = 50
FRAMES = 20


class Canvas:
    """Main-thread-only resource: an open file and a lock."""

    def __init__(self):
        self.log = tempfile.TemporaryFile("w+")
        self.lock = threading.Lock()
        self.frames = 0
        self.checksum = 0

    def draw(self, frame, positions):
        with self.lock:
            self.frames += 1
            self.checksum = (self.checksum * 31 + sum(positions) + frame) % 1_000_003
            self.log.write(f"{frame} {len(positions)}\n")


def step_cell(cell, frame):
    """Worker side: advance one cell's particles by one frame."""

    @when(cell)
    def moved(cell):
        pts = [(p * 7 + frame) % 1000 for p in cell.value]
        cell.value = pts
        return pts

    return moved


def draw_frame(frame, results, canvas):
    """Main thread: one pinned behavior per frame draws every cell."""

    @when(results, canvas)
    def drawn(results, canvas):
        positions = [p for r in results for p in r.value]
        canvas.value.draw(frame, positions)


canvas = PinnedCown(Canvas())
cells = [Cown(list(range(c, c + PARTICLES))) for c in range(CELLS)]
for frame in range(FRAMES):
    results = [step_cell(cell, frame) for cell in cells]
    draw_frame(frame, results, canvas)
wait()

c = canvas.value
c.log.seek(0)
lines = c.log.read().splitlines()
print(f"frames drawn: {c.frames}")
print(f"lines logged: {len(lines)}, particles per frame: {lines[0].split()[1]}")
print(f"checksum: {c.checksum}")
