"""RIM inference throughput: tiles/s and Mpixel/s at a tile size, on CPU and (if present) GPU.

Run: ``python bench/rim_throughput.py [--tile 256] [--batch 4] [--repeats 3] [--threads 2]``.
Prints one line per device and precision (float32, and the one ``precision: auto`` takes
there when it differs); no assertions (timings belong here, not in tests).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from skarim.deconv.device import select_device
from skarim.deconv.rim_deconvolver import deconvolve_windows
from skarim.deconv.weights import load_rim
from skarim.train.problems import ProblemConfig, make_batch


def measure(
    device: torch.device, tile: int, batch: int, repeats: int, dtype: torch.dtype
) -> tuple[float, float]:
    """Best-of-``repeats`` time of one :func:`deconvolve_windows` call on ``batch`` tiles."""
    problems = make_batch(np.random.default_rng(0), 1, ProblemConfig(tile=tile))
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
    return batch / best, batch * tile * tile / best / 1e6


def main() -> None:
    """Parse flags, measure each available device and print tiles/s and Mpixel/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        name = f"cpu x{args.threads}"
        if device.type == "cuda":
            name = torch.cuda.get_device_name(device)
        auto = select_device(device.type, "auto").dtype
        for dtype in dict.fromkeys([torch.float32, auto]):
            tiles_s, mpix_s = measure(device, args.tile, args.batch, args.repeats, dtype)
            kind = str(dtype).removeprefix("torch.")
            print(
                f"{name}: tile {args.tile}, batch {args.batch}, {kind}: "
                f"{tiles_s:.2f} tiles/s, {mpix_s:.2f} Mpixel/s"
            )


if __name__ == "__main__":
    main()
