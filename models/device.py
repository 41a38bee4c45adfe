"""The torch device a front door asks for, checked once with a message that names the way out.

``onlstm parse --device`` and ``onlstm serve`` (``ONLSTM_DEVICE``) take the same names:
``cpu``, ``cuda`` or ``cuda:N``.  Torch itself only fails later, deep in a model's ``.to``,
with ``AssertionError: Torch not compiled with CUDA enabled`` or a parse error of the name.
"""

from __future__ import annotations

__all__ = ["DeviceError", "check_device"]


class DeviceError(ValueError):
    """A device name that is not one, or a device this machine lacks."""


def check_device(name: str) -> str:
    """``name`` normalised (``" CUDA "`` -> ``"cuda"``), or ``DeviceError`` saying what to use instead
    (the same messages as ``ONLSTM_DEVICE`` gives ``onlstm serve``)."""
    value = name.strip().lower()
    kind, _, index = value.partition(":")
    if kind not in ("cpu", "cuda") or (index and not index.isdigit()) or (kind == "cpu" and index):
        raise DeviceError(f"{value!r} is not a device; use cpu, cuda or cuda:N")
    if kind == "cuda":
        import torch  # only here: `cpu` needs no torch import

        if not torch.cuda.is_available():
            raise DeviceError(f"device {value!r} was asked for but torch sees no CUDA GPU; use cpu")
        if index and int(index) >= torch.cuda.device_count():
            raise DeviceError(f"device {value!r} was asked for but torch sees {torch.cuda.device_count()} CUDA GPU(s) "
                              f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    return value
