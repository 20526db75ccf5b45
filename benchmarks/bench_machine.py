"""Reference throughput of this machine: large fp32 matmul and 3x3 convolutions (GFLOP/s).

    python benchmarks/bench_machine.py [--quick]

The forward 3x3 conv 64->128 at 32 px, batch 64 is the denominator of the training loops'
utilisation (bench_training.py). Narrower convs like those of the default profile's VGG-16
(width 0.25: 16-128 channels) are listed too: they show what a narrow network can reach at best.
FLOPs come from `torch.utils.flop_counter` (a multiply-add counts as 2).
"""

from __future__ import annotations

import argparse
import time

import bench_common as bc
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode


def flops_of(fn) -> int:
    with FlopCounterMode(display=False) as fc:
        fn()
    return int(fc.get_total_flops())


def best_seconds(fn, min_time: float, warmup: int = 2, min_reps: int = 8) -> float:
    for _ in range(warmup):
        fn()
    best, spent, reps = float("inf"), 0.0, 0
    while spent < min_time or reps < min_reps:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, spent, reps = min(best, dt), spent + dt, reps + 1
    return best


def matmul_row(n: int, min_time: float) -> dict:
    a, b = torch.randn(n, n), torch.randn(n, n)
    fn = lambda: torch.mm(a, b)  # noqa: E731
    fl = flops_of(fn)
    s = best_seconds(fn, min_time)
    return {"kernel": f"matmul {n}x{n}x{n}", "pass": "forward", "GFLOP": fl / 1e9, "ms": s * 1e3,
            "GFLOP/s": fl / s / 1e9}


def conv_rows(c_in: int, c_out: int, size: int, batch: int, min_time: float, backward: bool = True,
              channels_last: bool = False) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, c_in, size, size, generator=g)
    w = torch.randn(c_out, c_in, 3, 3, generator=g) * 0.05
    b = torch.zeros(c_out)
    name = f"conv3x3 {c_in}->{c_out} {size}px b{batch}"
    if channels_last:
        x, w = x.contiguous(memory_format=torch.channels_last), w.contiguous(memory_format=torch.channels_last)
        name += " NHWC"
    fwd = lambda: F.conv2d(x, w, b, padding=1)  # noqa: E731
    rows = []
    fl = flops_of(fwd)
    s = best_seconds(fwd, min_time)
    rows.append({"kernel": name, "pass": "forward", "GFLOP": fl / 1e9, "ms": s * 1e3, "GFLOP/s": fl / s / 1e9})
    if backward:
        xg, wg, bg = x.clone().requires_grad_(), w.clone().requires_grad_(), b.clone().requires_grad_()
        gy = torch.randn(batch, c_out, size, size, generator=g)

        def fb():
            y = F.conv2d(xg, wg, bg, padding=1)
            y.backward(gy)
            xg.grad = wg.grad = bg.grad = None

        fl = flops_of(fb)
        s = best_seconds(fb, min_time)
        rows.append({"kernel": name, "pass": "forward+backward", "GFLOP": fl / 1e9, "ms": s * 1e3,
                     "GFLOP/s": fl / s / 1e9})
    return rows


def reference_gflops(min_time: float = 1.0, results_dir=None) -> float:
    """The utilisation denominator: forward conv3x3 64->128, 32 px, batch 64, the faster of NCHW and NHWC.

    Measured now; the latest `machine` record of the same CPU counts too (the larger wins), so a
    reference measured while another job ran does not inflate utilisation.
    """
    now = max(conv_rows(64, 128, 32, 64, min_time, backward=False, channels_last=cl)[0]["GFLOP/s"]
              for cl in (False, True))
    rec = bc.latest("machine", results_dir)
    past = bc.conv_reference_gflops(results_dir) if rec and rec.get("cpu") == bc.cpu_model() else None
    return max(now, past or 0.0)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bc.common_args(ap)
    a = ap.parse_args(argv)
    min_time = 0.5 if a.quick else 2.0
    la = bc.wait_for_quiet(a.max_wait)
    torch.manual_seed(0)
    rows = [matmul_row(2048, min_time)]
    if not a.quick:
        rows.append(matmul_row(4096, min_time))
    for cl in (False, True):
        rows += conv_rows(64, 128, 32, 64, min_time, channels_last=cl)  # the reference conv
        # A VGG-16 at width 1/4 and 64 px: its first and its widest 3x3 layers (the default profile's
        # width 1/8 is narrower still).
        rows += conv_rows(16, 16, 64, 64, min_time, channels_last=cl)
        rows += conv_rows(128, 128, 8, 64, min_time, channels_last=cl)
    notes = ("Reference throughput, best of repeated runs. Utilisation elsewhere = achieved GFLOP/s / the "
             f"forward GFLOP/s of {bc.REF_KERNEL} in the faster memory layout (NCHW or NHWC = "
             "channels_last; oneDNN is faster in NHWC). Narrow layers run below it: the network's width bounds "
             "what any loop can reach.")
    return bc.record("machine", "Machine reference throughput (fp32, GFLOP/s)", rows, notes, load=la,
                     results_dir=a.results)


if __name__ == "__main__":
    main()
