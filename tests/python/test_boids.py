"""examples/boids.py: the seed's coarse-grained pinned-dispatch pattern runs
headless for 30 frames under Xvfb and draws a flock (the image is not
blank)."""
from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def png_pixels(path: Path) -> tuple[int, int, int, bytes]:
    """(width, height, bytes per pixel, unfiltered scanlines) of an 8-bit,
    non-interlaced RGB or RGBA PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert header is not None
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    out = bytearray()
    prev = bytearray(stride)
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 255
            elif ftype == 2:
                line[i] = (line[i] + b) & 255
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        out += line
        prev = line
    return width, height, bpp, bytes(out)


def test_boids_headless_30_frames() -> None:
    xvfb = shutil.which("xvfb-run")
    assert xvfb is not None, "xvfb-run is needed: apt-get install xvfb xauth"
    with tempfile.TemporaryDirectory() as cwd:
        png = Path(cwd) / "boids.png"
        proc = subprocess.run(
            [xvfb, "-a", sys.executable, str(ROOT / "examples" / "boids.py"),
             "--frames", "30", "--png", str(png), "--boids", "300", "--workers", "2"],
            cwd=cwd, capture_output=True, text=True, timeout=180,
            env={**os.environ})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        lines = proc.stdout.splitlines()
        assert re.fullmatch(r"30 frames of 300 boids in [0-9.]+ s: [0-9.]+ frames/s", lines[0]), lines
        assert re.fullmatch(r"per frame: workers [0-9.]+ ms of physics \(summed over 12 cells\), "
                            r"pinned write-back [0-9.]+ ms", lines[1]), lines
        width, height, bpp, pixels = png_pixels(png)
    assert (width, height) == (960, 640)
    lit = sum(1 for i in range(0, len(pixels), bpp) if any(pixels[i:i + 3]))
    # 300 small triangles: a blank frame has no lit pixel, a broken draw few.
    assert lit > 2000, lit


def test_png_decoder_sees_a_blank_image(tmp_path: Path) -> None:
    """The image check above can fail: an all-black PNG has no lit pixel."""
    width, height = 4, 2
    raw = b"".join(b"\x00" + bytes(width * 4) for _ in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    path = tmp_path / "black.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    w, h, bpp, pixels = png_pixels(path)
    assert (w, h, bpp) == (4, 2, 4)
    assert not any(pixels)
