"""The fused gate kernels of ``csrc/recurrence_kernels.c``, compiled at first use and called through ctypes.

Why plain C through ctypes and not a ``torch.utils.cpp_extension``: the kernels need no torch
headers (they work on raw rows), so they compile in under a second instead of about a minute,
and the library does not depend on the torch version it was built against.  The library is
cached under ``$ONLSTM_CACHE`` (default ``~/.cache/onlstm-parser``), named after a digest of the
source, the compiler flags and the machine, so an edit or another CPU rebuilds it.

Nothing here is required: when no C compiler is found, the build fails, or ``ONLSTM_NATIVE=0``
is set, ``kernels()`` returns None and ``models.network.recurrence`` runs its pure PyTorch path, which
computes the same (``tests/models/test_fast_onlstm.py`` holds both to the oracle).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch import Tensor

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).parent / "csrc" / "recurrence_kernels.c"
# the layer loop of csrc/layer_inference.c, built with OpenMP where the compiler has it (and without:
# one thread) so that it shares torch's libgomp and thread pool
LAYER_SOURCE = Path(__file__).parent / "csrc" / "layer_inference.c"
# products on the AMX tile units where the CPU has them (stubs elsewhere), built into the same library
AMX_SOURCE = Path(__file__).parent / "csrc" / "amx_product.c"
OPENMP_FLAGS = ["-fopenmp"]
# -ffast-math lets the compiler call glibc's vectorised exp (libmvec); the kernels never produce
# an infinity or a NaN from finite inputs, which is the assumption fast-math adds. It is given to
# the compile step only: linked with -ffast-math, a shared library gets crtfastmath.o, which turns
# on flush-to-zero for the whole process that loads it, and a user's own numbers would change.
FLAGS = ["-O3", "-march=native", "-mprefer-vector-width=512", "-ffast-math", "-fPIC", "-c"]
LINK_FLAGS = ["-shared"]
LIBRARIES = ["-lmvec", "-lm"]
DROPCONNECT_VALUES_PER_THREAD = 1 << 16  # below this a mask is drawn on one thread
_CTYPES = {torch.float32: ("f32", ctypes.c_float), torch.float64: ("f64", ctypes.c_double)}

# A step's gate arithmetic is split across threads from this many rows per thread.  Measured on the
# 2-core machine, interleaved: splitting the 20- and 32-row training batches made a step 4% slower
# (the hand-off waits for a core that OpenMP's spinning threads still hold), splitting inference
# batches of 64 sentences made them 17% faster.
STEP_ROWS_PER_THREAD = 32

_loaded: dict[str, Kernels | None] = {}
_disabled = 0  # > 0 inside ``disabled()``


class Kernels:
    """The forward and backward of one time step's gate arithmetic, for float32 and float64 rows."""

    def __init__(self, library: ctypes.CDLL):
        self.library = library
        self.forward_functions = {}
        self.backward_functions = {}
        self.logsumexp_functions = {}
        self.loss_backward_functions = {}
        pointer, integer = ctypes.c_void_p, ctypes.c_long
        for dtype, (suffix, _) in _CTYPES.items():
            forward = getattr(library, f"onlstm_step_forward_{suffix}")
            forward.argtypes = [integer] * 3 + [pointer, integer] * 5
            forward.restype = None
            backward = getattr(library, f"onlstm_step_backward_{suffix}")
            backward.argtypes = [integer] * 3 + [pointer, integer] * 6 + [pointer, pointer, pointer, integer]
            backward.restype = None
            self.forward_functions[dtype] = forward
            self.backward_functions[dtype] = backward
            logsumexp = getattr(library, f"onlstm_logsumexp_{suffix}")
            logsumexp.argtypes = [integer, integer, pointer, integer, pointer, pointer]
            logsumexp.restype = None
            loss_backward = getattr(library, f"onlstm_softmax_nll_backward_{suffix}")
            loss_backward.argtypes = [integer, integer, pointer, integer, pointer, pointer, pointer]
            loss_backward.restype = None
            self.logsumexp_functions[dtype] = logsumexp
            self.loss_backward_functions[dtype] = loss_backward
        self.dropconnect_functions = {}
        for dtype, (suffix, scalar) in _CTYPES.items():
            dropconnect = getattr(library, f"onlstm_dropconnect_{suffix}")
            dropconnect.argtypes = [integer, integer, pointer, pointer, ctypes.c_ulonglong, ctypes.c_ulonglong, scalar]
            dropconnect.restype = None
            self.dropconnect_functions[dtype] = dropconnect
        self.layer_function = library.onlstm_layer_inference_f16
        self.layer_function.argtypes = [integer, pointer, pointer, integer, integer, integer, *[pointer] * 11, integer]
        self.layer_function.restype = None
        self.amx = _amx_wanted() and bool(library.onlstm_amx_available())
        self.amx_min_rows = AMX_MIN_ROWS
        logger.info("C kernels loaded; products on the AMX tile units at inference: %s", "on" if self.amx else (
            "off (ONLSTM_AMX=0)" if not _amx_wanted() else "off (this CPU, compiler or kernel has none)"))
        self.amx_function = library.onlstm_amx_matmul
        self.amx_function.argtypes = [integer, integer, pointer, integer, integer, pointer, integer, integer, pointer,
                                      integer, integer, pointer, integer]
        self.amx_function.restype = None
        self.layer_threads_shared = bool(library.onlstm_layer_threads_shared())
        self.flush_function = library.onlstm_set_flush_subnormals
        self.flush_function.argtypes = [ctypes.c_int, ctypes.c_int]
        self.flush_function.restype = ctypes.c_int

    def _threads(self) -> int:
        """Threads for the C loops: torch's, when they share its OpenMP pool, else one."""
        return torch.get_num_threads() if self.layer_threads_shared else 1

    def flush_subnormals(self, on: bool) -> bool:
        """Flush-to-zero and denormals-are-zero on or off in this thread and in each of torch's
        ``torch.get_num_threads()`` OpenMP threads (``torch.set_flush_denormal`` reaches this
        thread only); False where the core is not x86 or the pool is not shared (one thread)."""
        done = bool(self.flush_function(int(on), torch.get_num_threads()))
        return done and (self.layer_threads_shared or torch.get_num_threads() == 1)

    def step_forward(self, gates: Tensor, c_prev: Tensor, chunk_size: int, c_out: Tensor, h_out: Tensor,
                     masters_out: Tensor) -> None:
        """In place, as ``recurrence._gate_arithmetic`` without ``saved``: gates (rows, G) activated
        (master columns become their softmax), c and h (rows, H), masters (rows, 2, n) cumulative sums."""
        rows, hidden_size = c_prev.shape
        function = self.forward_functions[gates.dtype]
        arguments = [_row(gates), _row(c_prev), _row(c_out), _row(h_out), _row(masters_out.view(rows, -1))]
        size = gates.element_size()
        _split_rows(rows, lambda start, count: function(  # noqa: B023
            count, hidden_size, chunk_size, *_from_row(arguments, start, size)), STEP_ROWS_PER_THREAD)

    def step_backward(self, acts: Tensor, masters: Tensor, c_prev: Tensor, c: Tensor, chunk_size: int, d_h: Tensor,
                      d_c: Tensor, d_input_distance: Tensor | None, d_forget_distance: Tensor | None,
                      d_gates: Tensor) -> None:
        """Gradients of one step: from d_h, d_c (rows, H) of h_t and c_t, and the distances' (rows,),
        writes d_gates (rows, G) of the pre-activations and replaces d_c by the gradient of c_{t-1}."""
        rows, hidden_size = c.shape
        function = self.backward_functions[acts.dtype]
        arguments = [_row(acts), _row(masters.view(rows, -1)), _row(c_prev), _row(c), _row(d_h), _row(d_c)]
        distances = [(_pointer(d_input_distance), 1), (_pointer(d_forget_distance), 1)]
        size = acts.element_size()
        _split_rows(rows, lambda start, count: function(  # noqa: B023
            count, hidden_size, chunk_size, *_from_row(arguments, start, size),
            *_moved_pointers(distances, start, size),
            *_from_row([_row(d_gates)], start, size)), STEP_ROWS_PER_THREAD)

    def logsumexp(self, logits: Tensor, out: Tensor, bias: Tensor | None = None) -> None:
        """out (rows,) = log(sum(exp(logits), -1)) of (rows, V) logits, without an exp(logits) tensor;
        with a bias (V,), logits += bias first, in place."""
        rows, width = logits.shape
        address, stride = _row(logits)
        size = logits.element_size()
        function = self.logsumexp_functions[logits.dtype]
        bias_address = None if bias is None else bias.contiguous().data_ptr()
        _split_rows(rows, lambda start, count: function(
            count, width, address + start * stride * size, stride, bias_address, out.data_ptr() + start * size), 64)

    def softmax_nll_backward(self, logits: Tensor, lse: Tensor, targets: Tensor, grad: Tensor) -> None:
        """In place: logits (rows, V) become (softmax(logits) - one_hot(targets)) * grad[:, None]."""
        rows, width = logits.shape
        address, stride = _row(logits)
        size = logits.element_size()
        function = self.loss_backward_functions[logits.dtype]
        targets = targets.to(torch.long).contiguous()
        lse, grad = lse.contiguous(), grad.contiguous()
        _split_rows(rows, lambda start, count: function(
            count, width, address + start * stride * size, stride, lse.data_ptr() + start * size,
            targets.data_ptr() + start * 8, grad.data_ptr() + start * size), 64)

    def dropconnect(self, source: Tensor, out: Tensor, seed: int, keep: float) -> None:
        """out = source * mask / keep, the mask drawn from ``seed`` alone (a keep-probability ``keep``
        per element); the same seed gives the same mask, so the backward applies it to the gradient
        with this same call.  Both contiguous, of the same size and dtype."""
        function = self.dropconnect_functions[source.dtype]
        source_address, out_address, size = source.data_ptr(), out.data_ptr(), source.element_size()
        threshold, scale = min(int(keep * 2**32), 2**32), 1.0 / keep
        _split_rows(source.numel(), lambda start, count: function(
            count, start, source_address + start * size, out_address + start * size, seed, threshold, scale),
            DROPCONNECT_VALUES_PER_THREAD)

    def layer_inference(self, active: list[int], offsets: list[int], chunk_size: int, gates: Tensor,
                        panels: Tensor, h0: Tensor, c0: Tensor, hs: Tensor, masters: Tensor, final_h: Tensor,
                        final_c: Tensor, amx_weights: Tensor | None = None) -> None:
        """A layer's time loop over the given steps in C, as ``recurrence._inference_recurrence``
        computes it.

        gates (P, G) float32 hold W x + b of the packed positions and are activated in place;
        panels is ``half_panels(U)``; h0, c0 (active[0], H); writes hs (P, H), masters (P, 2, n),
        and each row's state after its last step here into final_h, final_c (B, H).  On as many
        threads as torch uses, when built with OpenMP.  With ``amx_weights`` (``amx_panels(U)``),
        steps of ``amx_min_rows`` rows or more multiply on the AMX units."""
        hidden_size = h0.size(1)
        threads = self._threads()
        rows = torch.tensor([*active, *offsets], dtype=torch.long)
        batch_size = active[0] if active else 0
        cs = gates.new_empty(2, batch_size, hidden_size)
        tensors = [gates, panels, h0, c0, hs, masters, final_h, final_c, cs]
        if not all(tensor.is_contiguous() for tensor in tensors):
            raise ValueError("the C layer loop needs contiguous tensors")
        amx_inputs = None
        if amx_weights is not None and batch_size >= self.amx_min_rows:
            # h's bfloat16 parts: rows and columns padded to whole tiles, the padding zero
            amx_inputs = torch.zeros(3, -(-batch_size // 16) * 16, -(-hidden_size // 32) * 32, dtype=torch.int16)
        else:
            amx_weights = None
        self.layer_function(len(active), rows.data_ptr(), rows.data_ptr() + 8 * len(active), hidden_size,
                            chunk_size, threads, *[tensor.data_ptr() for tensor in tensors],
                            _pointer_or_none(amx_weights), _pointer_or_none(amx_inputs), self.amx_min_rows)

    def amx_matmul(self, inputs: Tensor, tiles: Tensor, out: Tensor) -> None:
        """out (rows, N) += inputs (rows, K) . W^T on the AMX units, float32 (five passes), W given as
        ``amx_panels(W)``; float32 CPU tensors, rows stored contiguously."""
        rows, width = inputs.shape
        k_tiles = tiles.size(2)
        if inputs.dtype != torch.float32 or out.dtype != torch.float32:
            raise ValueError(f"amx_matmul takes float32 tensors, got {inputs.dtype} and {out.dtype}")
        if width > 32 * k_tiles or out.size(1) > 16 * tiles.size(1) or out.size(0) != rows:
            raise ValueError(f"amx_matmul: inputs {tuple(inputs.shape)}, out {tuple(out.shape)} do not fit "
                             f"tiles {tuple(tiles.shape)}")
        if rows == 0:
            return
        (x, x_stride), (y, y_stride) = _row(inputs), _row(out)
        scratch = kept_int16("amx_inputs", 3 * -(-rows // 16) * 16 * 32 * k_tiles)
        threads = self._threads()
        self.amx_function(rows, width, x, x_stride, k_tiles, tiles.data_ptr(), tiles.size(1) // 2, 5, y, y_stride,
                          out.size(1), scratch.data_ptr(), threads)

    @staticmethod
    def supports(*tensors: Tensor) -> bool:
        """True when every tensor is a CPU float32/float64 tensor of one dtype."""
        dtype = tensors[0].dtype
        return dtype in _CTYPES and all(tensor.device.type == "cpu" and tensor.dtype == dtype for tensor in tensors)


PANEL = 32  # gates per panel, as in csrc/layer_inference.c

# id(W) -> (a weak reference to W, the version of its values, what was made of it or None), per kind
_WeightCache = dict[int, tuple[weakref.ref, int, Tensor | None]]
_half_panels: _WeightCache = {}


def _per_weight(cache: _WeightCache, weight: Tensor, make) -> Tensor | None:
    """``make(weight.detach())``, cached per tensor and per version of its values (an update in
    place is seen); the entry goes when the tensor does."""
    key = id(weight)
    cached = cache.get(key)
    if cached is not None and cached[0]() is weight and cached[1] == weight._version:
        return cached[2]
    made = make(weight.detach())
    forget = weakref.ref(weight, lambda _: cache.pop(key, None))
    cache[key] = (forget, weight._version, made)
    return made


def half_panels(weight: Tensor) -> Tensor | None:
    """U (G, H) in float16 as the C layer loop reads it, (G / 32 rounded up, H, 32): 32 gates side
    by side for each k, zero beyond G; None unless float16 holds every value of U exactly (a
    release's weights are float16 values, the weights of a model in training are not).  Cached
    per tensor and per version of its values."""
    return _per_weight(_half_panels, weight, _make_half_panels)


def _make_half_panels(values: Tensor) -> Tensor | None:
    half = values.to(torch.float16)
    if not torch.equal(half.to(values.dtype), values):
        return None
    gate_size, hidden_size = half.shape
    panel_count = -(-gate_size // PANEL)
    padded = torch.nn.functional.pad(half, (0, 0, 0, panel_count * PANEL - gate_size))
    return padded.view(panel_count, PANEL, hidden_size).transpose(1, 2).contiguous()


# AMX products from this many rows.  Below it the C layer loop's float16 panels are faster: a step
# of a few rows reads all of U's tiles for little arithmetic.  Dev sentences of 15-35 tokens in
# batches of 4 / 8 / 16 / 32, parse sentences/s on the 2-core Xeon: without AMX 445 / 551 / 592 / 593,
# from 4 rows 340 / 480 / 587 / 657, from 16 rows 453 / 563 / 606 / 658.
AMX_MIN_ROWS = 16
_amx_panels: _WeightCache = {}


def amx_panels(weight: Tensor) -> Tensor | None:
    """W (N, K) as csrc/amx_product.c reads it: (2, N / 16, K / 32, 16, 16, 2) int16 holding
    bfloat16 bits, both sizes rounded up to whole tiles (32 columns of N at a time) with zeros,
    the first part W rounded to bfloat16 and the second the rest, which is exact when every value
    of W is a float16 value (a release's weights, float32 or kept as float16); None otherwise.
    Cached as ``half_panels``."""
    return _per_weight(_amx_panels, weight, _make_amx_panels)


def _make_amx_panels(values: Tensor) -> Tensor | None:
    if values.dtype not in (torch.float32, torch.float16) or not float16_values(values):
        return None
    rows, width = values.shape
    tiles = torch.empty(2, -(-rows // 32) * 2, -(-width // 32), 16, 16, 2, dtype=torch.bfloat16)
    # 512 rows of W at a time: the temporaries stay near a megabyte (the whole of a 10,000-word
    # embedding at once took the service's peak memory up by 24 MB at start-up)
    for start in range(0, rows, 512):
        block = torch.nn.functional.pad(values[start : start + 512].float(), (0, -width % 32, 0, -min(512, rows - start) % 32))
        high = block.to(torch.bfloat16)
        low = (block - high.float()).to(torch.bfloat16)
        for index, part in enumerate((high, low)):
            tiles[index, start // 16 : start // 16 + block.size(0) // 16] = (
                part.view(block.size(0) // 16, 16, block.size(1) // 32, 16, 2).permute(0, 2, 3, 1, 4))
    return tiles.view(torch.int16)


_kept_int16 = threading.local()


def kept_int16(name: str, numel: int) -> Tensor:
    """A flat int16 scratch tensor of at least ``numel`` values that this thread keeps under ``name``."""
    buffer = getattr(_kept_int16, name, None)
    if buffer is None or buffer.numel() < numel:
        with torch.inference_mode(False):
            buffer = torch.empty(numel, dtype=torch.int16)
        setattr(_kept_int16, name, buffer)
    return buffer[:numel]


def float16_values(values: Tensor) -> bool:
    """Whether float16 holds every value exactly, checked a slice at a time (no full-size copy)."""
    return all(torch.equal(piece.to(torch.float16).to(piece.dtype), piece) for piece in values.split(512))


def _amx_wanted() -> bool:
    return os.environ.get("ONLSTM_AMX", "1").strip().lower() not in ("0", "false", "no", "off")


def _pointer_or_none(tensor: Tensor | None) -> int | None:
    return None if tensor is None else tensor.data_ptr()


def _row(tensor: Tensor) -> tuple[int, int]:
    """(data pointer, row stride) of a (rows, width) tensor whose rows are contiguous."""
    if tensor.dim() != 2 or (tensor.size(1) > 1 and tensor.stride(1) != 1):
        raise ValueError(f"the kernels need rows stored contiguously, got shape {tuple(tensor.shape)} "
                         f"strides {tensor.stride()}")
    return tensor.data_ptr(), tensor.stride(0)


def _from_row(arguments: Sequence[tuple[int | None, int]], start: int, size: int) -> list[int | None]:
    """(pointer, stride) pairs moved to row ``start``, flattened; None pointers stay None."""
    moved: list[int | None] = []
    for pointer, stride in arguments:
        moved.append(None if pointer is None else pointer + start * stride * size)
        moved.append(stride)
    return moved


def _moved_pointers(arguments: Sequence[tuple[int | None, int]], start: int, size: int) -> list[int | None]:
    """The pointers of (pointer, stride) pairs moved to row ``start``, without the strides."""
    return _from_row(arguments, start, size)[::2]


def _split_rows(rows: int, work, rows_per_thread: int) -> None:
    """``work(start, count)`` over [0, rows) in up to torch's number of threads, each given at least
    ``rows_per_thread`` rows (ctypes releases the GIL, so the pieces run in parallel)."""
    threads = min(torch.get_num_threads(), max(1, rows // rows_per_thread))
    if threads <= 1:
        work(0, rows)
        return
    bounds = [rows * index // threads for index in range(threads + 1)]
    futures = [_pool().submit(work, bounds[i], bounds[i + 1] - bounds[i]) for i in range(1, threads)]
    work(bounds[0], bounds[1] - bounds[0])
    for future in futures:
        future.result()


_executor: list[ThreadPoolExecutor] = []


def _pool() -> ThreadPoolExecutor:
    if not _executor:
        _executor.append(ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 2) - 1),
                                            thread_name_prefix="onlstm-kernels"))
    return _executor[0]


def _pointer(tensor: Tensor | None) -> int | None:
    if tensor is None:
        return None
    if tensor.dim() != 1 or (tensor.numel() > 1 and tensor.stride(0) != 1):
        raise ValueError("the distance gradients must be contiguous vectors")
    return tensor.data_ptr()


@contextlib.contextmanager
def disabled():
    """Within this context the recurrence takes its pure PyTorch path (benchmarks compare the two)."""
    global _disabled
    _disabled += 1
    try:
        yield
    finally:
        _disabled -= 1


@contextlib.contextmanager
def without_amx():
    """Within this context inference multiplies without the AMX units (benchmarks compare the two)."""
    fused_kernels = kernels()
    saved = fused_kernels.amx if fused_kernels is not None else False
    if fused_kernels is not None:
        fused_kernels.amx = False
    try:
        yield
    finally:
        if fused_kernels is not None:
            fused_kernels.amx = saved


def kernels() -> Kernels | None:
    """The compiled kernels, building them on first use; None when they are off or cannot be built."""
    if _disabled:
        return None
    if os.environ.get("ONLSTM_NATIVE", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    key = "default"
    if key not in _loaded:
        _loaded[key] = _build_and_load()
    return _loaded[key]


def _cache_dir() -> Path:
    configured = os.environ.get("ONLSTM_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "onlstm-parser"


def _cpu_flags() -> str:
    """The CPU's feature flags: a library built with -march=native is only reused on a CPU that has them."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return platform.processor()


def _build_and_load() -> Kernels | None:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None or platform.system() != "Linux":
        logger.info("no C compiler found (or not Linux): the ON-LSTM recurrence runs its pure PyTorch path")
        return None
    sources = b"".join(path.read_bytes() for path in (SOURCE, LAYER_SOURCE, AMX_SOURCE, *SOURCE.parent.glob("*.h")))
    settings = [compiler, *FLAGS, *OPENMP_FLAGS, *LINK_FLAGS, platform.machine(), _cpu_flags()]
    digest = hashlib.sha256(sources + " ".join(settings).encode())
    target = _cache_dir() / f"recurrence_kernels-{digest.hexdigest()[:16]}.so"
    try:
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            # build beside the target and rename: concurrent first uses never load half a file
            with tempfile.TemporaryDirectory(dir=target.parent) as building:
                output = Path(building) / target.name
                _compile(compiler, Path(building), output)
                os.replace(output, target)
        return Kernels(ctypes.CDLL(str(target)))
    except (OSError, subprocess.SubprocessError, AttributeError) as error:
        detail = getattr(error, "stderr", "") or error
        logger.warning("could not build the fused ON-LSTM kernels (%s); using the pure PyTorch path, which is "
                       "slower: install a C compiler (gcc) to get them", str(detail).strip()[:500])
        return None


def _compile(compiler: str, building: Path, output: Path) -> None:
    """Both sources into ``output``; the layer loop without OpenMP when the compiler lacks it."""
    def run(command: list[str]) -> None:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    step_objects, layer_objects, amx_objects = building / "kernels.o", building / "layer.o", building / "amx.o"
    run([compiler, *FLAGS, str(SOURCE), "-o", str(step_objects)])
    def threaded(openmp: list[str]) -> None:  # the sources whose loops run on OpenMP threads
        for source, objects in ((LAYER_SOURCE, layer_objects), (AMX_SOURCE, amx_objects)):
            run([compiler, *FLAGS, *openmp, str(source), "-o", str(objects)])

    try:
        threaded(OPENMP_FLAGS)
        openmp = OPENMP_FLAGS
    except subprocess.CalledProcessError as error:
        logger.info("no OpenMP in %s (%s): the C layer loop will run on one thread", compiler, error.stderr[:200])
        threaded([])
        openmp = []
    run([compiler, *LINK_FLAGS, *openmp, str(step_objects), str(layer_objects), str(amx_objects), "-o", str(output),
         *LIBRARIES])
