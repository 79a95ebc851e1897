"""The compiled pass of LawMonitor's per-unit sums (flowlaws/torch/kernel.py) against
`LawSums`' own sums, on every architecture kind, in float64 and float32, with D and D - R
read or formed in the pass."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from flowlaws.invariants import laws  # noqa: E402
from flowlaws.invariants.sums import CHANNELS, DELTA, DR, OPERANDS, REST, THETA, LawSums  # noqa: E402
from flowlaws.strategies import architectures  # noqa: E402
from flowlaws.torch import LawMonitor, kernel  # noqa: E402
from flowlaws.torch.monitor import _views_of  # noqa: E402


def _laid_out(shapes, reverse: bool) -> tuple[dict, int]:
    """Each parameter's (shape, strides, offset) in one vector, end to end; ``reverse``:
    its axes reversed in memory (a transposed view, as a converted parameter may be)."""
    views, at = {}, 0
    for k, shape in enumerate(shapes):
        order = list(reversed(range(len(shape)))) if reverse else list(range(len(shape)))
        strides, step = [0] * len(shape), 1
        for a in reversed(order):
            strides[a], step = step, step * shape[a]
        views[k] = (tuple(shape), tuple(strides), at)
        at += int(np.prod(shape))
    return views, at


def _combined(sums, S):
    Z, Zabs = sums.combine(S)
    return np.concatenate([Z, Zabs])


@given(st.data())
def test_the_kernel_s_sums_equal_the_torch_sums_for_every_architecture_kind(data):
    model = data.draw(architectures())
    small = data.draw(st.sampled_from([0, 10, 10**9]), label="small")  # reduced, both, entry by entry
    reverse = data.draw(st.booleans(), label="reverse")
    dtype = data.draw(st.sampled_from([torch.float64, torch.float32]), label="dtype")
    fly = data.draw(st.booleans(), label="fly")
    shapes = [tuple(shape) for _, shape in model.param_specs]
    views, length = _laid_out(shapes, reverse)
    sums = LawSums(laws(model, "cross_entropy"), shapes, small, views=views)
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    X = torch.from_numpy(np.random.default_rng(seed).normal(size=(len(OPERANDS), length))).to(dtype)
    reference = X.to(torch.float64, copy=True)  # the kernel forms every product in double: exact for float32
    if fly:  # row D holds theta after the step; the rows D - R and D are never read
        after = X[THETA] + X[DELTA]
        reference[DELTA] = after.double() - reference[THETA]
        reference[DR] = reference[DELTA] - reference[REST]
        X[DELTA], X[DR] = after, float("nan")
    else:
        X[DR] = X[DELTA] - X[REST]
        reference[DR] = X[DR].double()
    write = kernel.planned(sums, X, views, fly)
    assert write is not None, model.spec
    out = torch.full((CHANNELS, sums.M.shape[1]), float("nan"), dtype=torch.float64)  # every column written
    write(out)
    expected = _combined(sums, sums.columns(_views_of(reference, list(views.values()))))
    found = _combined(sums, out.numpy().T)
    scale = np.abs(expected).max(axis=0) + 1.0
    assert np.all(np.abs(found - expected) <= 1e-12 * scale), model.spec


def test_jobs_past_the_rows_or_the_kernel_s_limits_are_refused_not_run():
    from flowlaws.models import parse

    model = parse("mlp:3-4-2:relu")
    shapes = [tuple(shape) for _, shape in model.param_specs]
    views, length = _laid_out(shapes, False)
    sums = LawSums(laws(model), shapes, 0, views=views)
    assert kernel.jobs(sums, views, length) is not None
    assert kernel.jobs(sums, views, length - 1) is None  # its last entry past the row
    shifted = {**views, 0: (views[0][0], views[0][1], -1)}
    assert kernel.jobs(sums, shifted, length) is None
    X = torch.zeros((len(OPERANDS), length), dtype=torch.float16)
    assert kernel.planned(sums, X, views, False) is None  # half precision: torch's sums
    write = kernel.planned(sums, X.double(), views, False)
    for out in (torch.zeros(CHANNELS, sums.M.shape[1]), torch.zeros(CHANNELS, sums.M.shape[1] + 1, dtype=torch.float64),
                torch.zeros(sums.M.shape[1], CHANNELS, dtype=torch.float64).T):
        with pytest.raises(ValueError, match="float64"):
            write(out)  # float32, a column too many, rows not contiguous: refused before the kernel runs


def test_the_kernel_is_built_once_into_the_cache_folder_and_loaded_from_it(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    kernel.library.cache_clear()
    try:
        assert kernel.library() is not None
        built = list((tmp_path / "flowlaws").glob("kernel-*.so"))
        assert len(built) == 1
        stamp = built[0].stat().st_mtime_ns
        kernel.library.cache_clear()

        def compile_again(*args, **kwargs):
            raise AssertionError("built again")
        monkeypatch.setattr(kernel.subprocess, "run", compile_again)  # loaded, not built again
        assert kernel.library() is not None and built[0].stat().st_mtime_ns == stamp
    finally:
        kernel.library.cache_clear()


@pytest.mark.parametrize("why", ["no compiler", "FLOWLAWS_KERNEL=0"])
def test_without_the_kernel_the_monitor_sums_with_torch_to_the_same_records(why, tmp_path, monkeypatch, request):
    from torch import nn

    def run():
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                            nn.Linear(64, 6), nn.ReLU(), nn.Linear(6, 3))
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
        x, y = torch.randn(8, 2, 4, 4), torch.randint(0, 3, (8,))
        monitor = LawMonitor(net, opt, example_input=x, loss=nn.CrossEntropyLoss())
        for _ in range(12):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
        assert not monitor.errors and not monitor.flagged
        return monitor

    kernel.library.cache_clear()
    compiled = run()
    assert compiled._kept.P is None and compiled._kept.fly  # no products formed; D and D - R formed in the pass
    if why == "no compiler":
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
        monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    else:
        request.getfixturevalue("without_kernel")
    kernel.library.cache_clear()
    try:
        assert kernel.library() is None
        eager = run()
    finally:
        kernel.library.cache_clear()
    assert eager._kept.P is not None and not eager._kept.fly
    for a, b in zip(compiled.records, eager.records, strict=True):
        assert len(a.measured) == 12
        # the same predictions; each residual within both tolerances (float32 sums against float64 ones)
        assert np.allclose(a.predicted, b.predicted, rtol=1e-4, atol=1e-12), a.law.name
        residual = np.subtract(a.measured, a.predicted) - np.subtract(b.measured, b.predicted)
        assert np.all(np.abs(residual) <= np.add(a.resolution, b.resolution)), a.law.name
