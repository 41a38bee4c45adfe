"""Products on the AMX tile units (csrc/amx_product.c) against float64 and against the paths without them.

A release's weights are float16 values; on a CPU with AMX, inference multiplies by them in five
bfloat16 passes that make up the float32 product.  These tests hold that product to float64
at float32's rounding, and the model and the parser with it to themselves without it.  They run
where the CPU has AMX (the project's machines do) and are skipped elsewhere.
"""

import platform

import pytest
import torch

from onlstm.models.network import native

from .test_fast_onlstm import release_like_twins


@pytest.fixture
def amx(monkeypatch):
    fused_kernels = native.kernels()
    if fused_kernels is None or not fused_kernels.amx:
        pytest.skip("no AMX here (or the C kernels could not be built)")
    return fused_kernels


def float16_values(*shape: int, scale: float = 0.1) -> torch.Tensor:
    return (torch.randn(*shape) * scale).half().float()


def float32_close(got: torch.Tensor, want: torch.Tensor, float32: torch.Tensor) -> None:
    """No further from float64 than PyTorch's own float32 product ``float32`` (with slack for the
    order of the additions), and a bfloat16 product would be thousands of times further."""
    error = (got.double() - want).abs()
    float32_error = (float32.double() - want).abs()
    assert error.max() <= 2 * float32_error.max() + 1e-9, (error.max(), float32_error.max())
    assert error.mean() <= 2 * float32_error.mean() + 1e-9, (error.mean(), float32_error.mean())


# 20 rows (over the 16 of a tile) that end at different steps, some below three active rows
LENGTHS = torch.tensor([9, 9, 8, 9, 7, 9, 2, 9, 5, 9, 1, 9, 9, 3, 9, 9, 6, 9, 4, 9])


def assert_same_at_real_positions(got, expected, lengths: torch.Tensor) -> None:
    """Outputs and distances of two models' ``forward`` agree at every real position (float32)."""
    for row, length in enumerate(lengths.tolist()):
        torch.testing.assert_close(got.hidden[row, :length], expected.hidden[row, :length])
        torch.testing.assert_close(got.distances[:, row, :length], expected.distances[:, row, :length])


@pytest.mark.parametrize("rows", [1, 16, 17, 40, 300])
@pytest.mark.parametrize("width, outputs", [(18, 50), (200, 840), (600, 2520)])
def test_the_amx_product_is_the_float32_product_and_adds_to_its_output(amx, rows, width, outputs):
    """Sizes that are not whole tiles (16 rows, 32 columns of either side), a row block of 128 crossed."""
    torch.manual_seed(rows + width)
    inputs, weight = torch.randn(rows, width), float16_values(outputs, width)
    start = torch.randn(rows, outputs)
    out = start.clone()
    torch.set_num_threads(2)
    amx.amx_matmul(inputs, native.amx_panels(weight), out)
    float32_close(out, start.double() + inputs.double() @ weight.double().t(), start + inputs @ weight.t())


def test_the_tiles_hold_the_float16_weights_exactly_and_other_weights_get_none(amx):
    weight = float16_values(70, 45)
    tiles = native.amx_panels(weight)
    assert tiles.shape == (2, 96 // 16, 64 // 32, 16, 16, 2)
    # back from the tile layout: part (N/16, K/32, K pair r, column c, 2) -> (N, K)
    parts = tiles.view(torch.bfloat16).float().permute(0, 1, 4, 2, 3, 5).reshape(2, 96, 64)
    torch.testing.assert_close(parts.sum(0)[:70, :45], weight, rtol=0, atol=0)
    assert parts[:, 70:].abs().sum() == 0 and parts[:, :, 45:].abs().sum() == 0
    assert native.amx_panels(weight + 1e-5) is None  # not float16 values: the product would not be float32's
    assert native.amx_panels(weight) is tiles  # cached while the values stay


@pytest.mark.parametrize("threads, block_rows", [(1, 512), (2, 512), (2, 40)])
def test_the_model_with_amx_products_equals_the_plain_model(amx, monkeypatch, threads, block_rows):
    """Every product on AMX from three rows up (the layer loop, the input projections; the scores
    stay on PyTorch's product); rows that end at different steps, some blocks of steps below the
    threshold."""
    from onlstm.models.network import recurrence

    monkeypatch.setattr(recurrence, "INFERENCE_BLOCK_ROWS", block_rows)
    monkeypatch.setattr(amx, "amx_min_rows", 3)
    fast, plain = release_like_twins(hidden_size=40, chunk_size=4)
    torch.manual_seed(threads)
    ids = torch.randint(0, 40, (20, 9))
    lengths = LENGTHS
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            got = fast(ids, lengths)
            expected = plain(ids, lengths)
            nll = fast.token_nll(got.hidden, ids)
            expected_nll = torch.nn.functional.cross_entropy(
                plain.logits(expected.hidden).transpose(1, 2), ids, reduction="none")
    finally:
        torch.set_num_threads(previous)
    assert_same_at_real_positions(got, expected, lengths)
    for row, length in enumerate(lengths.tolist()):
        torch.testing.assert_close(nll[row, :length], expected_nll[row, :length])
    for (h, c), (h_plain, c_plain) in zip(got.state, expected.state):
        torch.testing.assert_close(h, h_plain)
        torch.testing.assert_close(c, c_plain)


def test_the_bundled_model_parses_the_same_with_and_without_amx(amx, monkeypatch, shared_data):
    """80 dev sentences in one batch: both kinds of product on AMX, the late steps below it."""
    from onlstm import Parser
    from onlstm.training.corpora import ptb_split_files, read_treebank, tree_tokens

    sentences = [tree_tokens(tree) for tree in read_treebank(ptb_split_files(shared_data / "ptb-sample", "dev"))]
    sentences = sentences[:80]
    parser = Parser.load()
    with_amx = parser.parse_many(sentences, batch_size=80)
    monkeypatch.setattr(amx, "amx", False)
    without = parser.parse_many(sentences, batch_size=80)
    assert [result.spans for result in with_amx] == [result.spans for result in without]
    for got, want in zip(with_amx, without):
        assert got.perplexity == pytest.approx(want.perplexity, rel=1e-5)
        assert got.distances == pytest.approx(want.distances, abs=1e-5)


def test_onlstm_amx_0_turns_the_amx_products_off(amx, monkeypatch):
    monkeypatch.setattr(native, "_loaded", {})  # loaded again from the cache, reading the variable
    monkeypatch.setenv("ONLSTM_AMX", "0")
    assert native.kernels() is not None and not native.kernels().amx


@pytest.mark.skipif(platform.machine() != "x86_64", reason="builds for an x86-64 level")
def test_built_for_a_cpu_without_avx512_or_amx_the_model_computes_the_same(monkeypatch, tmp_path):
    """Many users' CPUs have neither: built for x86-64-v3 (AVX2), the AMX functions are stubs that
    say no, the layer loop takes its portable panel code, and the model still equals the plain one."""
    if native.kernels() is None:
        pytest.skip("the fused C kernels could not be built here (no C compiler?)")
    monkeypatch.setattr(native, "_loaded", {})
    monkeypatch.setenv("ONLSTM_CACHE", str(tmp_path))
    monkeypatch.setattr(native, "FLAGS", [
        "-march=x86-64-v3" if flag == "-march=native" else flag
        for flag in native.FLAGS if flag != "-mprefer-vector-width=512"
    ])
    portable = native.kernels()
    assert portable is not None and not portable.amx
    assert len(list(tmp_path.glob("recurrence_kernels-*.so"))) == 1
    fast, plain = release_like_twins(hidden_size=40, chunk_size=4)
    ids = torch.randint(0, 40, (20, 9))
    lengths = LENGTHS
    with torch.inference_mode():
        got, expected = fast(ids, lengths), plain(ids, lengths)
    assert_same_at_real_positions(got, expected, lengths)
