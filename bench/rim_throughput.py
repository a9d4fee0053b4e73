"""RIM inference throughput: tiles/s, Mpixel/s and Gpix-steps/s at a tile size, per device.

Run: ``python bench/rim_throughput.py [--device all|cpu|cuda] [--tile 256] [--batch 4]
[--repeats 3] [--threads 2]``. ``all`` (the default) measures the CPU and, if present, the GPU.
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
from skarim.deconv.rim_deconvolver import deconvolve_windows
from skarim.deconv.weights import load_rim
from skarim.errors import DeviceError
from skarim.train.gpu_problems import WindowConfig, draw_windows


def measure(
    device: torch.device, tile: int, batch: int, repeats: int, dtype: torch.dtype
) -> tuple[float, float, float]:
    """Best-of-``repeats`` time of one :func:`deconvolve_windows` call on ``batch`` tiles, as
    tiles/s, Mpixel/s and Gpix-steps/s."""
    cfg = WindowConfig(core=tile, halo=0, context=0)
    cpu = torch.device("cpu")
    problems = draw_windows(np.random.default_rng(0), torch.Generator(cpu), 1, cfg, cpu)
    dirty = np.repeat(problems.dirty.numpy(), batch, axis=0).astype(np.float32)
    psf = problems.psf[0].numpy()
    sigma = float(problems.sigma[0])
    rim = load_rim(None, device, dtype)
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
        for dtype in dict.fromkeys(candidates):
            tiles_s, mpix_s, gpix_steps_s = measure(
                device, args.tile, args.batch, args.repeats, dtype
            )
            kind = str(dtype).removeprefix("torch.")
            print(
                f"{name}: tile {args.tile}, batch {args.batch}, {kind}: "
                f"{tiles_s:.2f} tiles/s, {mpix_s:.2f} Mpixel/s, {gpix_steps_s:.3f} Gpix-steps/s",
                flush=True,
            )


if __name__ == "__main__":
    main()
