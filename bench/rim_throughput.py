"""RIM inference throughput: tiles/s, Mpixel/s and Gpix-steps/s at a tile size, per device.

Run: ``python bench/rim_throughput.py [--device all|cpu|cuda] [--tile 256] [--batch 4]
[--repeats 3] [--threads 2] [--sizes 16x8,32x10]``. ``all`` (the default) measures the CPU and,
if present, the GPU. ``--sizes`` measures untrained networks of those ``hidden x steps`` sizes
instead of the shipped weights (a network's cost does not depend on its weights), for the
size-against-cost table of ``docs/benchmarks.md``.
Prints one line per device and precision (float32, the one ``precision: auto`` takes there
when it differs, and bfloat16 on a GPU); a pixel-step is one pixel through one of the RIM's
unrolled steps. No assertions (timings belong here, not in tests). Needs torch and numpy
only, so it runs on a bare GPU node from a source tree (``PYTHONPATH=.``).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from skarim.deconv.device import select_device
from skarim.deconv.rim import RIM, RIMConfig
from skarim.deconv.rim_deconvolver import deconvolve_windows
from skarim.deconv.weights import load_rim
from skarim.errors import DeviceError
from skarim.train.gpu_problems import WindowConfig, draw_windows


def measure(
    device: torch.device,
    tile: int,
    batch: int,
    repeats: int,
    dtype: torch.dtype,
    size: RIMConfig | None = None,
) -> tuple[float, float, float]:
    """Best-of-``repeats`` time of one :func:`deconvolve_windows` call on ``batch`` tiles, as
    tiles/s, Mpixel/s and Gpix-steps/s; the shipped weights, or an untrained network of
    ``size``."""
    cfg = WindowConfig(core=tile, halo=0, context=0)
    cpu = torch.device("cpu")
    problems = draw_windows(np.random.default_rng(0), torch.Generator(cpu), 1, cfg, cpu)
    dirty = np.repeat(problems.dirty.numpy(), batch, axis=0).astype(np.float32)
    psf = problems.psf[0].numpy()
    sigma = float(problems.sigma[0])
    if size is None:
        rim = load_rim(None, device, dtype)
    else:
        rim = RIM(size).to(device).cast_layers(dtype).eval()
    deconvolve_windows(rim, dirty, psf, sigma, device)  # warm-up
    best = np.inf
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        deconvolve_windows(rim, dirty, psf, sigma, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    pixels = batch * tile * tile
    return batch / best, pixels / best / 1e6, pixels * rim.config.steps / best / 1e9


def main() -> None:
    """Parse flags, measure the devices asked for and print their throughput."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["all", "cpu", "cuda"], default="all")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--sizes", type=_sizes, default=[None],
        help="untrained networks of these sizes, hidden x steps, comma-separated (16x8,32x10)",
    )  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    if args.device != "all":
        try:
            devices = [select_device(args.device).device]
        except DeviceError as exc:
            print(f"rim_throughput: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    for device in devices:
        name = f"cpu x{args.threads}"
        if device.type == "cuda":
            name = torch.cuda.get_device_name(device)
        auto = select_device(device.type, "auto").dtype
        candidates = [torch.float32, auto] + ([torch.bfloat16] if device.type == "cuda" else [])
        for size in args.sizes:
            net = "shipped" if size is None else f"hidden {size.hidden}, T {size.steps}"
            for dtype in dict.fromkeys(candidates):
                tiles_s, mpix_s, gpix_steps_s = measure(
                    device, args.tile, args.batch, args.repeats, dtype, size
                )
                kind = str(dtype).removeprefix("torch.")
                print(
                    f"{name}: {net}, tile {args.tile}, batch {args.batch}, {kind}: "
                    f"{tiles_s:.2f} tiles/s, {mpix_s:.2f} Mpixel/s, "
                    f"{gpix_steps_s:.4f} Gpix-steps/s, "
                    f"{args.threads / gpix_steps_s:.0f} CPU-thread ns per pixel-step",
                    flush=True,
                )


def _sizes(text: str) -> list[RIMConfig]:
    """``16x8,32x10`` -> RIM sizes (hidden, steps)."""
    try:
        return [
            RIMConfig(hidden=int(h), steps=int(t))
            for h, t in (item.split("x") for item in text.split(","))
        ]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected hidden x steps, e.g. 16x8,32x10"
        ) from None


if __name__ == "__main__":
    main()
