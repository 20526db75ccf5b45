"""What decides a float result on this machine: the CPU's SIMD flags, the kernels torch and numpy pick, threads.

Two CPUs run the same code through other kernels (oneDNN, ATen, MKL, OpenBLAS and numpy each pick
theirs by instruction set) and other thread counts, so float sums come out in other orders. On the
same machine and thread count hipaug's results repeat byte for byte; elsewhere a float32 run moves
by what small-data training makes of last-bit differences, and a float64 run (the smoke profile)
does not move at all. `kernel_info` is recorded in every results store's `run.json`.

`SECOND_KERNEL_SET` makes this machine compute as another CPU would: the environment the any-CPU
test (tests/test_any_cpu.py) and `benchmarks/bench_kernels.py` run the experiment under.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

# The environment variables that override which kernels run (recorded in run.json when set).
KERNEL_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "OPENBLAS_CORETYPE",
              "NPY_DISABLE_CPU_FEATURES", "OMP_NUM_THREADS")

# Another CPU, emulated: ATen's scalar-fallback kernels, oneDNN at SSE4.1, MKL at SSE4.2, OpenBLAS's
# Haswell (AVX2) kernels, numpy without its AVX-512 loops, and one thread instead of the machine's
# count. Each changes the order of float sums; none changes what is computed.
SECOND_KERNEL_SET = {
    "ATEN_CPU_CAPABILITY": "default",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
    "OPENBLAS_CORETYPE": "Haswell",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
    "OMP_NUM_THREADS": "1",
}

# The SIMD flags of /proc/cpuinfo that select kernels (the rest do not change a float result).
SIMD_FLAGS = ("sse4_1", "sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
              "avx512_bf16", "amx_tile", "asimd", "sve")


def cpu_description() -> tuple[str, list[str]]:
    """The CPU's model name and its kernel-selecting SIMD flags (from /proc/cpuinfo where there is one)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name":
                model = value.strip()
            elif key in ("flags", "Features"):
                flags = set(value.split())
            if flags and model:
                break
    except OSError:
        pass
    return model, [f for f in SIMD_FLAGS if f in flags]


def kernel_info(threads: int | None = None) -> dict:
    """The CPU, torch's kernel capability and threads, numpy's SIMD level and the overriding environment."""
    import numpy as np
    import torch

    model, flags = cpu_description()
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
        numpy_simd = [k for k in ("AVX512_SPR", "AVX512_ICL", "AVX512_SKX", "AVX2", "SSE42", "ASIMD") if features.get(k)]
    except ImportError:  # numpy's private module moved: record nothing rather than guess
        numpy_simd = []
    return {
        "cpu": model,
        "cpu_simd_flags": flags,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": int(threads if threads is not None else torch.get_num_threads()),
        "numpy": np.__version__,
        "numpy_simd": numpy_simd[:1],  # the widest level numpy's dispatched loops use
        "kernel_env": {k: os.environ[k] for k in KERNEL_ENV if k in os.environ},
    }
