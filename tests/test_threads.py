import pickle

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from flowlaws import cli
from flowlaws.threads import OnOneBlasThread, one_blas_thread


def _blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


@pytest.fixture(autouse=True)
def two_blas_threads():
    """The suite runs on one BLAS thread (conftest.py): two here, so that each pin is seen to act."""
    with threadpool_limits(limits=2, user_api="blas"):
        assert _blas_threads() and set(_blas_threads()) == {2}
        yield


def test_one_blas_thread_limits_every_blas_library_and_restores_it():
    before = _blas_threads()
    with one_blas_thread():
        assert _blas_threads() and set(_blas_threads()) == {1}
    assert _blas_threads() == before


def test_the_command_runs_its_work_on_one_blas_thread(monkeypatch):
    seen = []
    monkeypatch.setitem(cli.main.__globals__, "cmd_laws", lambda args: seen.append(_blas_threads()) or 0)
    assert cli.main(["laws", "mlp:2-3-1:relu"]) == 0
    assert seen == [[1] * len(seen[0])]


def test_a_worker_task_runs_on_one_blas_thread_and_pickles():
    task = pickle.loads(pickle.dumps(OnOneBlasThread(_blas_threads)))
    assert set(task()) == {1}
