"""The fused kernels' loading (it must not change the process's floating-point state) and DropConnect's mask."""

import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from onlstm.models.network import native
from onlstm.models.network.cell import drop_connect

PROBE = """
import sys
tiny = sys.float_info.min / 4   # a subnormal number: with flush-to-zero on, arithmetic makes it 0.0
before = tiny * 1.0 > 0
from onlstm.models.network import native
loaded = native.kernels() is not None
print(loaded, before, tiny * 1.0 > 0)
"""


@pytest.mark.slow
def test_loading_the_kernels_keeps_subnormal_numbers():
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    loaded, before, after = result.stdout.split()
    if loaded != "True":
        pytest.skip("the fused kernels could not be built here (no C compiler)")
    assert before == after == "True", "loading the kernels turned on flush-to-zero for the whole process"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dropconnect_kernel_draws_dropout_s_distribution_and_repeats_its_mask_in_the_backward(dtype):
    if native.kernels() is None:
        pytest.skip("the fused kernels could not be built here (no C compiler)")
    torch.manual_seed(0)
    weight = torch.randn(300, 700, dtype=dtype, requires_grad=True)
    generator_state = torch.get_rng_state()
    dropped = drop_connect(weight, 0.4, training=True)
    kept = dropped != 0
    # the share kept is 0.6 within four standard deviations, rows and columns alike
    count = weight.numel()
    assert abs(kept.double().mean().item() - 0.6) < 4 * math.sqrt(0.24 / count)
    for axis, size in ((0, 300), (1, 700)):
        shares = kept.double().mean(dim=axis)
        assert abs(shares.mean().item() - 0.6) < 4 * math.sqrt(0.24 / count)
        assert shares.std().item() < 2 * math.sqrt(0.24 / (count / size))
    torch.testing.assert_close(dropped[kept], weight[kept] * (1 / 0.6), rtol=0, atol=0)
    upstream = torch.randn_like(weight)
    dropped.backward(upstream)
    torch.testing.assert_close(weight.grad, torch.where(kept, upstream * (1 / 0.6), 0), rtol=0, atol=0)

    with torch.no_grad():
        torch.set_rng_state(generator_state)  # torch's generator gives the mask, whatever the number of threads
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            one_thread = drop_connect(weight, 0.4, training=True)
        finally:
            torch.set_num_threads(threads)
        assert torch.equal(one_thread, dropped)
        assert not torch.equal(drop_connect(weight, 0.4, training=True), dropped)  # the next draw: another mask
        assert drop_connect(weight, 0.4, training=False) is weight
        torch.set_rng_state(generator_state)  # native=False: exactly F.dropout's stream
        expected = F.dropout(weight, 0.4, True)
        torch.set_rng_state(generator_state)
        assert torch.equal(drop_connect(weight, 0.4, training=True, native=False), expected)
