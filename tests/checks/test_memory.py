import tracemalloc

import numpy as np
import pytest

from autograder.checks import memory
from autograder.checks.memory import (
    NUMPY_DOMAIN,
    TracingOffError,
    describe_bytes,
    measure,
    measure_call,
    numpy_bytes,
    rss_bytes,
    start_tracing,
)


@pytest.fixture(autouse=True)
def tracing():
    start_tracing()
    yield
    tracemalloc.stop()


def test_numpy_bytes_counts_a_buffer_exactly_and_takes_it_back():
    before = numpy_bytes()
    array = np.ones((1000, 1000))
    assert numpy_bytes() - before == 8_000_000
    del array
    assert numpy_bytes() == before


def test_the_private_raw_trace_list_agrees_with_the_public_snapshot():
    # The checks read tracemalloc._get_traces, private CPython API (pyproject.toml says
    # where): a Python that changes its shape or meaning fails here first.
    array = np.empty(100_000)  # allocated in C: the innermost frame is this test's
    domain, size, frames, total_frames = next(
        trace for trace in memory._raw_traces() if trace[1] == array.nbytes
    )
    assert (domain, size) == (NUMPY_DOMAIN, array.nbytes)
    filename, line = frames[0]
    assert filename == __file__ and isinstance(line, int) and total_frames >= len(frames)
    numpy_only = tracemalloc.DomainFilter(True, NUMPY_DOMAIN)
    snapshot = tracemalloc.take_snapshot().filter_traces([numpy_only])
    assert numpy_bytes() == sum(stat.size for stat in snapshot.statistics("filename"))


def test_views_add_nothing():
    array = np.ones(1_000_000)
    before = numpy_bytes()
    views = [array[::2], array.reshape(1000, 1000), array.T]
    same = np.asarray(array)
    assert numpy_bytes() == before
    assert all(view.base is array for view in views)
    assert same is array


def test_measure_reports_net_and_peak():
    with measure() as held:
        kept = np.ones(500_000)  # 4 MB, kept
        _ = np.ones(1_000_000).sum()  # 8 MB temporary, gone at once
    assert held.net_bytes == 4_000_000
    assert 12_000_000 <= held.peak_bytes < 12_500_000
    assert held.seconds > 0
    del kept


def test_measure_call_returns_the_result():
    result, measured = measure_call(np.zeros, 1000)
    assert result.shape == (1000,)
    assert measured.net_bytes == 8000


def test_zeros_are_traced_in_full_but_not_resident():
    rss_before, traced_before = rss_bytes(), numpy_bytes()
    zeros = np.zeros(64 * 2**20 // 8)
    assert numpy_bytes() - traced_before == 64 * 2**20
    assert rss_bytes() - rss_before < 8 * 2**20  # calloc: pages are not touched yet
    zeros.fill(1.0)
    assert rss_bytes() - rss_before > 60 * 2**20


def test_measuring_without_tracing_fails_clearly():
    tracemalloc.stop()
    with pytest.raises(TracingOffError, match="set-up cell"):
        numpy_bytes()
    assert isinstance(TracingOffError("x"), AssertionError)  # a failed check, not a crash


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (8_000_000, "7.63 MiB (8,000,000 bytes)"),
        (512, "512 bytes"),
        (-2048, "-2.00 KiB (-2,048 bytes)"),
    ],
)
def test_describe_bytes(size, text):
    assert describe_bytes(size) == text
