"""``check_device``: the one device check of ``onlstm parse --device`` and ``ONLSTM_DEVICE``."""

from __future__ import annotations

import pytest
import torch

from onlstm.models.device import DeviceError, check_device


@pytest.mark.parametrize("name, expected", [("cpu", "cpu"), (" CPU ", "cpu")])
def test_names_are_normalised(name, expected):
    assert check_device(name) == expected


@pytest.mark.parametrize("name", ["banana", "cpu:0", "cuda:x", "gpu", ""])
def test_what_is_not_a_device_says_what_is(name):
    with pytest.raises(DeviceError, match="is not a device; use cpu, cuda or cuda:N"):
        check_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu_is_refused_before_torch_asserts():
    with pytest.raises(DeviceError, match="device 'cuda:1' was asked for but torch sees no CUDA GPU; use cpu"):
        check_device("cuda:1")
