"""Boids: a flock simulated in parallel, drawn with pyglet on the main thread.

The coarse-grained pinned-dispatch pattern:

* The flock lives in ``Matrix`` cowns, one per cell of a grid over the world.
  A cell's value is ``(own, halo)``: its own boids and, read-only, the boids
  of the neighbouring cells that are close enough to matter.  Each row is
  ``[id, x, y, vx, vy]``.
* Every frame, one worker behavior per cell computes separation, alignment
  and cohesion for the cell's own boids and returns them moved (the cells run
  in parallel, each on its own cown).
* One ``@when`` over every cell's result, every cell, and the main-thread
  ``PinnedCown`` matrices of positions and velocities runs on the main
  thread: it writes the results back into those matrices, moves the pyglet
  shapes, and sorts the boids into cells again for the next frame.

Run it in a window::

    python examples/boids.py

or headless, rendering the last frame to an image (under Xvfb, e.g.
``xvfb-run -a python examples/boids.py --frames 30 --png boids.png``)::

    python examples/boids.py --frames 30 --png boids.png

It prints frames per second and how each frame's time splits between the
workers' physics and the pinned write-back.  pyglet is only imported on the
main interpreter (inside ``main``), so workers never load it.
"""

from __future__ import annotations

import argparse
import math
import time

from bocpy import Cown, Matrix, PinnedCown, pump, start, wait, when

WIDTH = 960.0
HEIGHT = 640.0
GRID_X = 4
GRID_Y = 3
VIEW_RADIUS = 40.0     # alignment and cohesion look this far
SEPARATION = 14.0      # closer than this pushes apart
MAX_SPEED = 3.2
MIN_SPEED = 1.2
W_SEPARATION = 0.06
W_ALIGNMENT = 0.05
W_COHESION = 0.004


def wrapped(d: float, size: float) -> float:
    """The shortest signed distance along one axis of the wrapping world."""
    if d > size / 2:
        return d - size
    if d < -size / 2:
        return d + size
    return d


def step_boids(own: list[list[float]], halo: list[list[float]]) -> list[list[float]]:
    """One physics step for ``own`` (rows ``[id, x, y, vx, vy]``), seeing
    ``own`` and ``halo`` as neighbours.  Pure Python: runs on a worker."""
    others = own + halo
    r2 = VIEW_RADIUS * VIEW_RADIUS
    s2 = SEPARATION * SEPARATION
    out = []
    for bid, x, y, vx, vy in own:
        sx = sy = ax = ay = cx = cy = 0.0
        seen = 0
        for oid, ox, oy, ovx, ovy in others:
            if oid == bid:
                continue
            dx = wrapped(ox - x, WIDTH)
            dy = wrapped(oy - y, HEIGHT)
            d2 = dx * dx + dy * dy
            if d2 > r2:
                continue
            seen += 1
            ax += ovx
            ay += ovy
            cx += dx
            cy += dy
            if d2 < s2:
                sx -= dx
                sy -= dy
        if seen:
            vx += (ax / seen - vx) * W_ALIGNMENT + (cx / seen) * W_COHESION
            vy += (ay / seen - vy) * W_ALIGNMENT + (cy / seen) * W_COHESION
        vx += sx * W_SEPARATION
        vy += sy * W_SEPARATION
        speed = math.hypot(vx, vy)
        if speed > MAX_SPEED:
            vx, vy = vx * MAX_SPEED / speed, vy * MAX_SPEED / speed
        elif 0 < speed < MIN_SPEED:
            vx, vy = vx * MIN_SPEED / speed, vy * MIN_SPEED / speed
        out.append([bid, (x + vx) % WIDTH, (y + vy) % HEIGHT, vx, vy])
    return out


def cell_of(x: float, y: float) -> tuple[int, int]:
    """The grid cell holding a point."""
    return (min(int(x / WIDTH * GRID_X), GRID_X - 1),
            min(int(y / HEIGHT * GRID_Y), GRID_Y - 1))


def partition(rows: list[list[float]]) -> list[tuple[Matrix | None, Matrix | None]]:
    """Sorts boids into cells; each cell also gets, as its halo, the boids of
    the 8 neighbouring cells within VIEW_RADIUS of its border."""
    own: list[list[list[float]]] = [[] for _ in range(GRID_X * GRID_Y)]
    halo: list[list[list[float]]] = [[] for _ in range(GRID_X * GRID_Y)]
    cw, ch = WIDTH / GRID_X, HEIGHT / GRID_Y
    for row in rows:
        gx, gy = cell_of(row[1], row[2])
        own[gy * GRID_X + gx].append(row)
        fx, fy = row[1] - gx * cw, row[2] - gy * ch
        near_x = [0] + ([-1] if fx < VIEW_RADIUS else []) + ([1] if fx > cw - VIEW_RADIUS else [])
        near_y = [0] + ([-1] if fy < VIEW_RADIUS else []) + ([1] if fy > ch - VIEW_RADIUS else [])
        for ox in near_x:
            for oy in near_y:
                if ox or oy:
                    n = ((gy + oy) % GRID_Y) * GRID_X + (gx + ox) % GRID_X
                    if n != gy * GRID_X + gx:
                        halo[n].append(row)
    return [(Matrix(o) if o else None, Matrix(h) if h else None)
            for o, h in zip(own, halo)]


def physics_frame(cells: list[Cown]) -> list[Cown]:
    """Schedules one physics behavior per cell; returns their result cowns,
    each of which will hold ``(moved own boids or None, seconds spent)``."""
    results = []
    for cell in cells:
        @when(cell)
        def physics(cell):
            t0 = time.perf_counter()
            own, halo = cell.value
            if own is None:
                return None, 0.0
            moved = step_boids(own.tolist(), halo.tolist() if halo is not None else [])
            return Matrix(moved), time.perf_counter() - t0
        results.append(physics)
    return results


def write_back_frame(results: list[Cown], cells: list[Cown], pos: PinnedCown,
                     vel: PinnedCown, scene: PinnedCown) -> None:
    """Schedules the frame's one pinned behavior: copies every cell's result
    into the main-thread matrices, moves the shapes and re-partitions."""
    @when(results, cells, pos, vel, scene)
    def write_back(results, cells, pos, vel, scene):
        t0 = time.perf_counter()
        positions, velocities, view = pos.value, vel.value, scene.value
        rows = []
        worker_s = 0.0
        for r in results:
            moved, spent = r.value
            worker_s += spent
            if moved is not None:
                rows.extend(moved.tolist())
        for bid, x, y, vx, vy in rows:
            i = int(bid)
            positions[i, 0], positions[i, 1] = x, y
            velocities[i, 0], velocities[i, 1] = vx, vy
        view.draw_state(positions, velocities)
        for cell, value in zip(cells, partition(rows)):
            cell.value = value
        view.frames += 1
        view.worker_s += worker_s
        view.writeback_s += time.perf_counter() - t0


class Scene:
    """Main-thread drawing state: a pyglet batch with one triangle per boid.
    Lives in a PinnedCown: only the main thread touches it."""

    def __init__(self, n: int, window) -> None:
        import pyglet
        from pyglet import shapes

        self.window = window
        self.batch = pyglet.graphics.Batch()
        self.tris = [shapes.Triangle(0, 0, 0, 0, 0, 0, color=self.colour(i, n),
                                     batch=self.batch) for i in range(n)]
        self.frames = 0
        self.worker_s = 0.0
        self.writeback_s = 0.0

    @staticmethod
    def colour(i: int, n: int) -> tuple[int, int, int]:
        t = i / max(n - 1, 1)
        return (int(90 + 160 * t), int(200 - 80 * t), 255)

    def draw_state(self, positions: Matrix, velocities: Matrix) -> None:
        sx = self.window.width / WIDTH
        sy = self.window.height / HEIGHT
        for i, tri in enumerate(self.tris):
            x, y = positions[i, 0] * sx, positions[i, 1] * sy
            vx, vy = velocities[i, 0], velocities[i, 1]
            speed = math.hypot(vx, vy) or 1.0
            ux, uy = vx / speed, vy / speed
            tri.x, tri.y = x + 7 * ux, y + 7 * uy
            tri.x2, tri.y2 = x - 4 * ux - 3 * uy, y - 4 * uy + 3 * ux
            tri.x3, tri.y3 = x - 4 * ux + 3 * uy, y - 4 * uy - 3 * ux

    def render(self) -> None:
        self.window.switch_to()
        self.window.clear()
        self.batch.draw()


def initial_flock(n: int, seed: int) -> list[list[float]]:
    """n boids at random places with random headings."""
    import random

    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        angle = rnd.uniform(0, 2 * math.pi)
        speed = rnd.uniform(MIN_SPEED, MAX_SPEED)
        rows.append([float(i), rnd.uniform(0, WIDTH), rnd.uniform(0, HEIGHT),
                     speed * math.cos(angle), speed * math.sin(angle)])
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boids", type=int, default=600)
    ap.add_argument("--frames", type=int, default=0,
                    help="run this many frames headless, then exit (0: a window until closed)")
    ap.add_argument("--png", help="with --frames: save the last frame to this PNG file")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    if args.boids < 1:
        ap.error("--boids must be at least 1")
    if args.png and args.frames < 1:
        ap.error("--png needs --frames N (headless mode)")

    import pyglet

    headless = args.frames > 0
    window = pyglet.window.Window(960, 640, caption="bocpy boids", visible=not headless)
    rows = initial_flock(args.boids, args.seed)
    positions = Matrix([[r[1], r[2]] for r in rows])
    velocities = Matrix([[r[3], r[4]] for r in rows])
    scene_obj = Scene(args.boids, window)
    scene_obj.draw_state(positions, velocities)
    pos, vel, scene = PinnedCown(positions), PinnedCown(velocities), PinnedCown(scene_obj)
    cells = [Cown(value) for value in partition(rows)]
    start(args.workers)
    t_start = time.perf_counter()

    def frame() -> None:
        write_back_frame(physics_frame(cells), cells, pos, vel, scene)

    if headless:
        for _ in range(args.frames):
            frame()
            while pump().executed == 0:   # the frame's write-back has not run yet
                time.sleep(0.0002)
        scene_obj.render()
        if args.png:
            pyglet.image.get_buffer_manager().get_color_buffer().save(args.png)
    else:
        pending = [False]

        def tick(_dt: float) -> None:
            if pending[0] and pump().executed:
                pending[0] = False
            if not pending[0]:
                frame()
                pending[0] = True

        @window.event
        def on_draw() -> None:
            scene_obj.render()

        pyglet.clock.schedule_interval(tick, 1 / 60)
        pyglet.app.run()
    elapsed = time.perf_counter() - t_start
    wait()
    frames = max(scene_obj.frames, 1)
    print(f"{scene_obj.frames} frames of {args.boids} boids in {elapsed:.2f} s: "
          f"{scene_obj.frames / elapsed:.1f} frames/s")
    print(f"per frame: workers {1000 * scene_obj.worker_s / frames:.2f} ms of physics "
          f"(summed over {GRID_X * GRID_Y} cells), pinned write-back "
          f"{1000 * scene_obj.writeback_s / frames:.2f} ms")
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
