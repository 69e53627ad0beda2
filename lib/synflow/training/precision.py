"""The training precision: float32, or bfloat16 autocast where the hardware runs it natively.

=============  ==========================================================================
precision      what a training step does (on every device)
=============  ==========================================================================
``float32``    float32 weights and activations, NCHW memory: every run stored before
               this option existed was trained so (its identity keeps today's name)
``bfloat16``   channels-last memory, convolutions and linear layers under bfloat16
               autocast; weights, their masks, optimizer state, BatchNorm's parameters
               and statistics, the input normalisation and the loss stay float32
``auto``       resolved once, on the machine that makes the config
               (:func:`_default_precision`): ``bfloat16`` with a CUDA GPU or a CPU with
               native bf16 (x86 ``avx512_bf16``/``amx_bf16``, ARM ``bf16``),
               ``float32`` elsewhere (emulated bf16 is several times slower than float32)
=============  ==========================================================================

``$SYNFLOW_TRAIN_PRECISION`` (``float32`` or ``bfloat16``) decides what ``auto`` means
instead, e.g. ``SYNFLOW_TRAIN_PRECISION=float32`` to force float32 on a bf16 machine.
A run's precision is part of its identity (``RunConfig.train_precision``): configs store
the resolved value, never ``auto``, so a float32 run is never loaded as a bfloat16 one.
Pruned weights stay exactly zero in both: the mask multiplies the float32 weight before
autocast casts it, and bf16 keeps zero exact.

>>> resolve("auto", "cpu") in PRECISIONS
True
>>> resolve("float32", "cuda")
'float32'
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform

import torch

PRECISIONS = ("float32", "bfloat16")
AUTO = "auto"
VARIABLE = "SYNFLOW_TRAIN_PRECISION"
# CPU flags of native bf16 arithmetic (Linux /proc/cpuinfo names)
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def check_precision(precision: str, *, auto: bool = True) -> str:
    """``precision`` if it is one of :data:`PRECISIONS` (or "auto" when ``auto``); else
    ValueError naming it and the allowed values.

    >>> check_precision("bfloat16"), check_precision("auto")
    ('bfloat16', 'auto')
    >>> check_precision("auto", auto=False)
    Traceback (most recent call last):
        ...
    ValueError: training precision 'auto' is not allowed; choose one of: float32, bfloat16
    """
    allowed = (*PRECISIONS, AUTO) if auto else PRECISIONS
    if precision not in allowed:
        raise ValueError(f"training precision {precision!r} is not allowed; "
                         f"choose one of: {', '.join(allowed)}")
    return precision


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux: ``/proc/cpuinfo``'s ``flags`` or ``Features``);
    empty where they cannot be read.

    >>> flags = cpu_flags()
    >>> isinstance(flags, frozenset)
    True
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def native_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (where emulated bf16 is slower than
    float32: measured 5-10x on an AVX2 Zen CPU).

    >>> native_bf16() == bool(cpu_flags() & BF16_FLAGS)
    True
    """
    return bool(BF16_FLAGS & cpu_flags()) and platform.machine().lower() in (
        "x86_64", "amd64", "aarch64", "arm64")


def _device_precision(device: str | torch.device) -> str:
    """The faster precision on ``device``: bfloat16 on CUDA (when the GPU supports it)
    and on CPUs with native bf16, float32 elsewhere."""
    device = torch.device(device)
    if device.type == "cuda":
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    return "bfloat16" if device.type == "cpu" and native_bf16() else "float32"


def _default_precision() -> str:
    """What "auto" means here: ``$SYNFLOW_TRAIN_PRECISION`` when set, else
    :func:`_device_precision` of the default training device (CUDA when available)."""
    forced = os.environ.get(VARIABLE, "").strip()
    if forced and forced != AUTO:
        try:
            return check_precision(forced, auto=False)
        except ValueError as error:
            raise ValueError(f"${VARIABLE}: {error}") from None
    return _device_precision("cuda" if torch.cuda.is_available() else "cpu")


def resolve(precision: str, device: str | torch.device | None = None) -> str:
    """``precision`` itself, or for "auto" :func:`_default_precision` (``device`` given:
    that device's, :func:`_device_precision`, unless ``$SYNFLOW_TRAIN_PRECISION`` is set).

    >>> resolve("float32"), resolve("bfloat16", "cuda")
    ('float32', 'bfloat16')
    >>> resolve("auto", "cpu") in PRECISIONS
    True
    """
    check_precision(precision)
    if precision != AUTO:
        return precision
    if device is None or os.environ.get(VARIABLE, "").strip() not in ("", AUTO):
        return _default_precision()
    return _device_precision(device)


def memory_format(precision: str) -> torch.memory_format:
    """Channels-last for bfloat16, NCHW (contiguous) for float32.

    >>> memory_format("bfloat16"), memory_format("float32")
    (torch.channels_last, torch.contiguous_format)
    """
    return torch.channels_last if check_precision(precision, auto=False) == "bfloat16" \
        else torch.contiguous_format


def autocast(precision: str, device: str | torch.device):
    """The context a forward pass runs in: bf16 autocast on ``device``'s type for
    bfloat16, nothing for float32.

    >>> import torch
    >>> with autocast("bfloat16", "cpu"):
    ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
    torch.bfloat16
    >>> with autocast("float32", "cpu"):
    ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
    torch.float32
    """
    if check_precision(precision, auto=False) == "float32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


# CPU runs of the results store train with one thread: a float sum's order, and so a
# trained number, depends on the thread count; with one thread per run the numbers
# depend only on the machine's kind, and runs go side by side in one-thread workers.
RUN_THREADS = 1


@contextlib.contextmanager
def cpu_threads(count: int | None):
    """torch's intra-op CPU threads set to ``count`` inside (None: unchanged), restored
    after.

    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with cpu_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    before = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if count is not None:
            torch.set_num_threads(before)
