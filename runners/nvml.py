"""Device samples (utilisation, memory, power) from NVML on a background thread, through ctypes.

No Python NVML package is needed: libnvidia-ml.so.1 ships with the driver. Where it is missing (CPU-only
machines) `open_sampler` returns None and no samples are recorded. Devices are matched by UUID, since NVML
and CUDA may number them differently.
"""

from __future__ import annotations

import ctypes
import threading
import time

INTERVAL_S = 0.1


class _Util(ctypes.Structure):
    _fields_ = [("gpu", ctypes.c_uint), ("memory", ctypes.c_uint)]


class _Mem(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]


class NvmlSampler:
    def __init__(self, lib: ctypes.CDLL, handle: ctypes.c_void_p) -> None:
        self._lib, self._handle = lib, handle
        self._rows: list[tuple[int, float | None, float | None, float | None]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="nvml-sampler", daemon=True)
        self._thread.start()

    def _sample(self) -> tuple[int, float | None, float | None, float | None]:
        util, mem, power = _Util(), _Mem(), ctypes.c_uint()
        u = (float(util.gpu)
             if self._lib.nvmlDeviceGetUtilizationRates(self._handle, ctypes.byref(util)) == 0 else None)
        m = (mem.used / 2**20
             if self._lib.nvmlDeviceGetMemoryInfo(self._handle, ctypes.byref(mem)) == 0 else None)
        p = (power.value / 1000
             if self._lib.nvmlDeviceGetPowerUsage(self._handle, ctypes.byref(power)) == 0 else None)
        return time.perf_counter_ns(), u, m, p

    def _loop(self) -> None:
        while not self._stop.wait(INTERVAL_S):
            row = self._sample()
            with self._lock:
                self._rows.append(row)

    def drain(self) -> list[tuple[int, float | None, float | None, float | None]]:
        with self._lock:
            rows, self._rows = self._rows, []
        return rows

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)


def open_sampler(device: str) -> NvmlSampler | None:
    """A running sampler for a "cuda:N" device, or None where NVML is unavailable."""
    if not device.startswith("cuda"):
        return None
    try:
        import torch

        lib = ctypes.CDLL("libnvidia-ml.so.1")
        if lib.nvmlInit_v2() != 0:
            return None
        uuid = str(torch.cuda.get_device_properties(torch.device(device)).uuid)
        if not uuid.startswith("GPU-"):
            uuid = "GPU-" + uuid
        handle = ctypes.c_void_p()
        if lib.nvmlDeviceGetHandleByUUID(uuid.encode(), ctypes.byref(handle)) != 0:
            return None
        return NvmlSampler(lib, handle)
    except (OSError, AttributeError, RuntimeError):
        return None
