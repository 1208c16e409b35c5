"""The profile-picture pipeline: time and peak memory per upload.

    python -m bench.images [--runs 7] [--quick]

``eleva.core.images.to_profile_jpeg`` on a 4000×3000 photo-like JPEG (noise and gradients,
quality 90, EXIF orientation 6 as phones write it), a 2000×2000 RGBA PNG and a 500-frame
GIF; each "as is" (shrink while unloaded: JPEG draft mode, reduced-scale decoding),
"convert first" (``im.convert("RGB")`` before ``thumbnail``: a full-size decode), to show
what draft mode saves, and "reducing_gap=2" (``thumbnail``'s default, which the pipeline
used before: JPEG draft mode stops at 1/4 scale, 1000×750, and Lanczos resamples from
there; the pipeline now passes reducing_gap=1.0 and decodes straight to 500 px at 1/8). Time is the median of ``--runs``
calls in this process.

Peak memory growth is measured in a fresh subprocess per case, two ways:
- RSS: VmHWM (the resident high-water mark, reset through /proc/self/clear_refs just
  before the call) minus VmRSS before it — every allocation, C ones included;
- tracemalloc: the peak of Python allocations during the call. Pillow allocates pixel
  buffers with C malloc, which tracemalloc does not see, so this one under-reports.

Also: how fast a 12000×9000 image is refused from its header.
"""

# The path is fixed before the imports that follow it.
# ruff: noqa: E402
from __future__ import annotations

import os
import sys

# `python bench/x.py` puts bench/ first on sys.path, where bench/http.py would shadow the
# standard library's `http`. Take bench/ off the path and put the project on it.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import argparse
import gc
import io
import json
import re
import subprocess
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from bench._common import ROOT, machine, median, rule, verdict

TARGET_JPEG_MS = 60.0
TARGET_JPEG_MB = 25.0
TARGET_REFUSE_MS = 50.0
TARGET_ACCEPTED_MB = 100.0
# Accepted inputs, each measured; the last two are near the largest the decode budget
# (eleva.core.images.MAX_DECODE_BYTES, 80 MB; decode_cost) lets through in its worst modes.
CASES = ("jpeg", "png", "gif", "png-max", "webp-max")
# Refused from the header: small files that would decode huge (issue 16), and a canvas
# beyond the pixel limit.
REFUSED = ("webp-bomb", "png-bomb", "huge")
LABELS = {
    "jpeg": "JPEG 4000×3000 (q90)",
    "png": "PNG 2000×2000 RGBA",
    "gif": "GIF 500 frames",
    "png-max": "PNG 3200×3200 RGBA",
    "webp-max": "WebP 2200×2200",
    "webp-bomb": "WebP 6300×6300 lossless",
    "png-bomb": "PNG 6000×6000 RGBA",
    "huge": "JPEG 12000×9000",
}


# -- inputs ------------------------------------------------------------------------------


def photo(width: int, height: int, mode: str = "RGB"):
    """Photo-like pixels: smooth gradients, blotches and fine grain (compresses like a
    photo, unlike flat colour or pure noise)."""
    from PIL import Image

    grain = Image.effect_noise((width, height), 24)
    blotches = Image.effect_noise((width // 16, height // 16), 64).resize(
        (width, height), Image.Resampling.BICUBIC
    )
    across = Image.linear_gradient("L").rotate(90).resize((width, height))
    down = Image.linear_gradient("L").resize((width, height))
    bands = [
        Image.blend(Image.blend(across, blotches, 0.5), grain, 0.15),
        Image.blend(Image.blend(down, blotches, 0.4), grain, 0.15),
        Image.blend(Image.blend(across, down, 0.5), grain, 0.2),
    ]
    if mode == "RGBA":
        bands.append(Image.blend(down, across, 0.3))
    return Image.merge(mode, bands)


def make_inputs(folder: Path) -> dict[str, Path]:
    from PIL import Image, ImageDraw

    paths = {name: folder / f"{name}.img" for name in (*CASES, *REFUSED)}

    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° CW, as a phone held upright writes it
    photo(4000, 3000).save(paths["jpeg"], "JPEG", quality=90, exif=exif)

    photo(2000, 2000, "RGBA").save(paths["png"], "PNG")

    base = Image.linear_gradient("L").resize((320, 240))
    frames = []
    for i in range(500):
        frame = base.rotate(i * 0.72).point(lambda v, i=i: (v + i) % 256)
        ImageDraw.Draw(frame).rectangle((i % 280, 60, i % 280 + 40, 100), fill=255)
        frames.append(frame)
    frames[0].save(paths["gif"], "GIF", save_all=True, append_images=frames[1:], duration=40)

    photo(3200, 3200, "RGBA").save(paths["png-max"], "PNG", compress_level=1)
    photo(2200, 2200).save(paths["webp-max"], "WEBP", quality=90, method=0)
    # The bombs: a few bytes or KB that decode to 150 MB and 137 MB.
    Image.new("RGB", (6300, 6300)).save(paths["webp-bomb"], "WEBP", lossless=True, method=0)
    Image.new("RGBA", (6000, 6000)).save(paths["png-bomb"], "PNG", optimize=True)
    Image.new("RGB", (12000, 9000), (120, 130, 140)).save(paths["huge"], "JPEG", quality=90)
    return paths


# -- the pipeline, and the variant without reduced-scale decoding ------------------------


def as_is(data: bytes) -> bytes:
    from eleva.core.images import to_profile_jpeg

    return to_profile_jpeg(data)


def convert_first(data: bytes) -> bytes:
    """The pipeline with ``convert("RGB")`` before ``thumbnail``: the image is loaded at
    full size, so JPEG draft mode cannot apply."""
    from PIL import Image, ImageOps

    from eleva.core import images

    with Image.open(io.BytesIO(data), formats=images.ACCEPTED_FORMATS) as im:
        width, height = im.size
        if width * height > images.MAX_PIXELS:
            raise images.ImageTooLarge("too large")
        exif = im.getexif()
        rgb = images._flatten(im)  # convert("RGB"), transparency onto white: a full load
        rgb.thumbnail((images.MAX_SIDE, images.MAX_SIDE), Image.Resampling.LANCZOS)
        rgb.info["exif"] = exif.tobytes()
        return images._encode(ImageOps.exif_transpose(rgb))


def reducing_gap_2(data: bytes) -> bytes:
    """The pipeline with ``thumbnail``'s default reducing_gap=2.0: JPEG draft mode stops
    at twice the target (1/4 scale for 4000×3000) and Lanczos resamples from there."""
    from PIL import Image, ImageOps

    from eleva.core import images

    with Image.open(io.BytesIO(data), formats=images.ACCEPTED_FORMATS) as im:
        width, height = im.size
        if width * height > images.MAX_PIXELS:
            raise images.ImageTooLarge("too large")
        im.thumbnail((images.MAX_SIDE, images.MAX_SIDE), Image.Resampling.LANCZOS, 2.0)
        return images._encode(images._flatten(ImageOps.exif_transpose(im)))


VARIANTS: dict[str, Callable[[bytes], bytes]] = {
    "as is": as_is,
    "convert first": convert_first,
    "reducing_gap=2": reducing_gap_2,
}


def difference(a: bytes, b: bytes) -> float:
    """RMS difference of two outputs, in 0–255 levels (NaN if their sizes differ)."""
    from PIL import Image, ImageChops, ImageStat

    with Image.open(io.BytesIO(a)) as x, Image.open(io.BytesIO(b)) as y:
        if x.size != y.size:
            return float("nan")
        rms = ImageStat.Stat(ImageChops.difference(x.convert("RGB"), y.convert("RGB"))).rms
    return sum(rms) / len(rms)


# -- memory, in a fresh process per case -------------------------------------------------


def _status(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1)) * 1024


def child(variant: str, path: str) -> None:
    """Run once in this fresh process; print the memory figures as JSON."""
    from PIL import Image

    fn = VARIANTS[variant]
    data = Path(path).read_bytes()
    # Warm up on a tiny image of the same format: plugins and codecs loaded, not counted.
    with Image.open(io.BytesIO(data)) as im:
        fmt = im.format
    small = io.BytesIO()
    Image.new("RGB", (64, 64)).save(small, fmt)
    fn(small.getvalue())
    gc.collect()

    rss_before = _status("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        reset = True
    except OSError:
        reset = False
    fn(data)
    rss_growth = _status("VmHWM") - rss_before

    gc.collect()
    tracemalloc.start()
    fn(data)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(json.dumps({"rss": rss_growth, "traced": traced_peak, "hwm_reset": reset}))


def memory(variant: str, path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "bench.images", "--child", variant, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


# -- timing ------------------------------------------------------------------------------


def timed(fn: Callable[[bytes], object], data: bytes) -> tuple[float, float]:
    """Wall-clock and CPU milliseconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn(data)
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


def refuse(data: bytes) -> tuple[float, str]:
    """Milliseconds to refuse ``data``, and what the pipeline raised."""
    from eleva.core.images import to_profile_jpeg

    started = time.perf_counter()
    try:
        to_profile_jpeg(data)
    except Exception as exc:
        return (time.perf_counter() - started) * 1000, type(exc).__name__
    return (time.perf_counter() - started) * 1000, "nothing (accepted)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="timed calls per case (median)")
    parser.add_argument("--quick", action="store_true", help="3 runs per case")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    runs = 3 if args.quick else args.runs

    import PIL

    rule("bench.images")
    print(f"machine: {machine()}; Pillow {PIL.__version__}")
    with tempfile.TemporaryDirectory(prefix="eleva-bench-images-") as folder:
        started = time.perf_counter()
        paths = make_inputs(Path(folder))
        print(f"inputs made in {time.perf_counter() - started:.1f} s:")
        for name, path in paths.items():
            print(f"  {LABELS[name]:<22} {path.stat().st_size / 1e6:6.2f} MB")
        data = {name: path.read_bytes() for name, path in paths.items()}

        times: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for name in CASES:
            for fn in VARIANTS.values():
                fn(data[name])  # warm-up
        for _ in range(runs):  # interleaved, so drift hits every case alike
            for name in CASES:
                for variant, fn in VARIANTS.items():
                    times.setdefault((name, variant), []).append(timed(fn, data[name]))
        mem = {(n, v): memory(v, paths[n]) for n in CASES for v in VARIANTS}
        diffs = {
            (n, v): difference(convert_first(data[n]), fn(data[n]))
            for n in CASES
            for v, fn in VARIANTS.items()
        }
        refusals = {name: [refuse(data[name]) for _ in range(max(runs, 11))] for name in REFUSED}

    print(
        f"\n{'case':<22}{'variant':<16}{'wall ms':>8}{'CPU ms':>8}{'RSS peak +MB':>14}"
        f"{'tracemalloc +MB':>17}{'RMS diff':>10}"
    )
    for name in CASES:
        for variant in VARIANTS:
            m = mem[(name, variant)]
            wall = median([w for w, _ in times[(name, variant)]])
            cpu = median([c for _, c in times[(name, variant)]])
            print(
                f"{LABELS[name]:<22}{variant:<16}{wall:>8.1f}{cpu:>8.1f}"
                f"{m['rss'] / 2**20:>14.1f}{m['traced'] / 2**20:>17.2f}"
                f"{diffs[(name, variant)]:>10.2f}"
            )
    if not all(m["hwm_reset"] for m in mem.values()):
        print("(VmHWM could not be reset: RSS growth measured against the process's peak)")
    print()
    refuse_ms = {}
    raised = {}
    for name in REFUSED:
        refuse_ms[name] = median([ms for ms, _ in refusals[name]])
        raised[name] = refusals[name][0][1]
        print(
            f"{LABELS[name]} ({len(data[name]):,} bytes) refused in {refuse_ms[name]:.2f} ms "
            f"(median), raising {raised[name]}"
        )

    jpeg_ms = median([w for w, _ in times[("jpeg", "as is")]])
    jpeg_cpu = median([c for _, c in times[("jpeg", "as is")]])
    jpeg_mb = mem[("jpeg", "as is")]["rss"] / 2**20
    print(
        "\nRSS is the figure to trust: Pillow's pixel buffers are C allocations that "
        "tracemalloc does not see\n(compare the two columns for the full-size decodes). "
        "RMS diff: how far the output is from a fair resampling of the\nfull-size image "
        "(convert first), in 0–255 levels (the test pictures' fine grain exaggerates it)."
    )
    print("\ntargets:")
    ok = verdict(jpeg_ms <= TARGET_JPEG_MS)
    print(
        f"  JPEG 4000×3000 ≤ {TARGET_JPEG_MS:.0f} ms: {jpeg_ms:.1f} ms wall, "
        f"{jpeg_cpu:.1f} ms CPU ({ok}, on wall clock)"
    )
    print(
        f"  JPEG 4000×3000 ≤ {TARGET_JPEG_MB:.0f} MB peak growth: {jpeg_mb:.1f} MB RSS "
        f"({verdict(jpeg_mb <= TARGET_JPEG_MB)})"
    )
    worst = max(CASES, key=lambda n: mem[(n, "as is")]["rss"])
    worst_mb = mem[(worst, "as is")]["rss"] / 2**20
    print(
        f"  every accepted input ≤ {TARGET_ACCEPTED_MB:.0f} MB peak growth: at most "
        f"{worst_mb:.1f} MB RSS, {LABELS[worst]} ({verdict(worst_mb <= TARGET_ACCEPTED_MB)})"
    )
    slowest = max(REFUSED, key=lambda n: refuse_ms[n])
    print(
        f"  refused ≤ {TARGET_REFUSE_MS:.0f} ms: at most {refuse_ms[slowest]:.2f} ms, "
        f"{LABELS[slowest]} ({verdict(refuse_ms[slowest] <= TARGET_REFUSE_MS)})"
    )
    for name in REFUSED:
        if raised[name] != "ImageTooLarge":
            print(
                f"  NOTE: {LABELS[name]} raised {raised[name]}, not ImageTooLarge: the API "
                "answers 415 (not a supported image) instead of 413."
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
