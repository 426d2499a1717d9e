"""The checks, in-process. What only a real Jupyter kernel shows (the output cache,
tracebacks, stderr) is in test_checks_in_kernel.py."""

import mmap
import re
import sys
import tracemalloc

import numpy as np
import pytest

from autograder import checks
from autograder.checks.references import buffer_owner, find_holders


def words(phrase: str) -> str:
    """A pattern for ``phrase`` wherever the message wraps it (checks wrap at 80 columns)."""
    return re.escape(phrase).replace(r"\ ", r"\s+")


def flat(text: str) -> str:
    """A message on one line, as written before it was wrapped."""
    return " ".join(text.split())


@pytest.fixture(autouse=True)
def tracing():
    checks.start_tracing()
    yield
    tracemalloc.stop()


def test_buffer_owner_follows_base():
    array = np.ones(100)
    assert buffer_owner(array[10:][::2]) is array
    assert buffer_owner(array) is array


def test_freed_array_passes():
    big = np.ones((1000, 1000))
    checks.track(big, "big")
    del big
    checks.assert_freed("big", expected_nbytes=8_000_000)
    assert checks.holders_of("big") == []


def test_a_view_keeps_the_buffer_and_is_named():
    big = np.ones(1_000_000)
    checks.track(big[:10], "big")  # tracking a view remembers the owner
    namespace = {"first": big[:10]}
    del big
    holders = find_holders(buffer_owner(namespace["first"]), "big", namespace=namespace)
    assert [(h.kind, h.where) for h in holders] == [("view", "`first`")]
    assert "first.copy()" in holders[0].fix
    with pytest.raises(AssertionError, match=words("still in memory")):
        checks.assert_freed("big")


@pytest.mark.parametrize(
    ("make_namespace", "kind", "where"),
    [
        (lambda a: {"a": a}, "variable", "`a`"),
        (lambda a: {"cache": {"x": [a[5:]]}}, "container", "`cache['x'][0]`"),
        # A tuple cannot lose an entry: the name that holds the tuples is the one to drop.
        (lambda a: {"pairs": ((1, a),)}, "variable", "`pairs[0][1]`"),
        (lambda a: {"pairs": [(1, a)]}, "container", "`pairs[0][1]`"),
        (lambda a: {"keep": (lambda: a)}, "closure", "`keep (closure variable 'a')`"),
        (lambda a: {"f": (lambda x=a: x)}, "closure", "`f (default argument 0)`"),
        (lambda a: {"box": type("Box", (), {})()}, None, None),  # holds nothing
    ],
)
def test_holders_are_named_by_kind(make_namespace, kind, where):
    array = np.ones(1000)
    namespace = make_namespace(array)
    holders = find_holders(array, "array", namespace=namespace)
    if kind is None:
        assert holders == []
    else:
        assert [(h.kind, h.where) for h in holders] == [(kind, where)]


def test_an_attribute_is_named():
    class Model:
        pass

    model = Model()
    model.weights = np.ones(1000)
    holders = find_holders(model.weights, "weights", namespace={"model": model})
    assert [(h.kind, h.where) for h in holders] == [("attribute", "`model.weights`")]
    assert "del model.weights" in holders[0].fix


def test_a_copy_left_behind_fails_on_the_measured_drop():
    big = np.ones(1_000_000)
    checks.track(big, "big")
    backup = big.copy()
    del big
    with pytest.raises(AssertionError, match=words("a full copy of its data is still in memory")):
        checks.assert_freed("big")
    del backup
    checks.assert_freed("big")


def test_keep_bytes_allows_what_the_exercise_keeps():
    pixels = np.ones((1000, 1000))
    checks.track(pixels, "pixels")
    small = pixels.astype(np.uint8)
    del pixels
    with pytest.raises(AssertionError):
        checks.assert_freed("pixels")  # 1 MB is still new
    checks.assert_freed("pixels", keep_bytes=small.nbytes)


def test_a_smaller_stand_in_does_not_count():
    stand_in = np.ones(1)
    checks.track(stand_in, "grid")
    del stand_in
    with pytest.raises(AssertionError, match=r"asks\s+for\s+7\.63\s+MiB"):
        checks.assert_freed("grid", expected_nbytes=8_000_000)


def test_reference_cycles_are_collected_before_judging():
    big = np.ones(1_000_000)
    checks.track(big, "big")
    cycle = [big]
    cycle.append(cycle)
    del big, cycle
    checks.assert_freed("big")


def test_bad_input_fails_with_a_message_not_a_traceback_from_inside():
    with pytest.raises(AssertionError, match=words("must be a NumPy array, but it is list")):
        checks.track([1, 2, 3], "numbers")
    with pytest.raises(AssertionError, match=words("No array was tracked as 'missing'")):
        checks.assert_freed("missing")
    with pytest.raises(AssertionError, match=words("No array was tracked as 'missing'")):
        checks.holders_of("missing")
    with pytest.raises(AssertionError, match=words("must be a NumPy array")):
        checks.assert_in_place(lambda a: None, "not an array")


def test_checks_require_tracing():
    tracemalloc.stop()
    with pytest.raises(AssertionError, match=words("Memory tracing is off")):
        checks.track(np.ones(3), "x")


def _leaky_factory():
    kept = []

    def normalize(batch):
        kept.append(batch)
        return batch / batch.max()

    return normalize, kept


def test_no_leak_passes_a_clean_function():
    checks.assert_no_leak(
        lambda b: b / b.max(), lambda: (np.random.default_rng(0).random(100_000),)
    )


def test_no_leak_catches_growth_per_call():
    normalize, kept = _leaky_factory()
    with pytest.raises(
        AssertionError, match=r"normalize\(\)\s+leaks:\s+2\s+calls\s+left\s+1.53\s+MiB"
    ) as info:
        checks.assert_no_leak(normalize, lambda: (np.ones(100_000),), calls=20)
    assert "`normalize's closure variable 'kept'` grew by 2 entries" in flat(str(info.value))
    # Stopped as soon as the leak was certain: the warm-up call and 2 measured calls ran.
    assert len(kept) == 3


def test_no_leak_counts_what_is_kept_as_python_objects():
    history = []

    def zscore(batch):
        result = (batch - batch.mean()) / batch.std()
        history.append(result.tolist())  # no array is kept, but every value is
        return result

    with pytest.raises(AssertionError, match=r"zscore\(\)\s+leaks:[\s\S]*Python\s+objects"):
        checks.assert_no_leak(zscore, lambda: (np.random.default_rng(0).random(100_000),))
    assert len(history) <= 3


def test_peak_below_budget():
    def streaming(n):
        return sum(float(np.ones(100_000).sum()) for _ in range(n))

    def gathering(n):
        return float(np.concatenate([np.ones(100_000) for _ in range(n)]).sum())

    assert checks.assert_peak_below(streaming, 50, budget_bytes=2 * 2**20) == 5_000_000
    with pytest.raises(AssertionError, match=r"gathering\(\)\s+peaked\s+at\s+76.3"):
        checks.assert_peak_below(gathering, 50, budget_bytes=2 * 2**20)


def test_in_place():
    def inplace(a):
        a -= a.min()
        a /= a.max()

    def temporaries(a):
        a[:] = (a - a.min()) / (a.max() - a.min())

    def rebinds(a):
        return (a - a.min()) / (a.max() - a.min())

    checks.assert_in_place(
        inplace, np.random.default_rng(1).random(1_000_000), max_peak_fraction=0.05
    )
    with pytest.raises(AssertionError, match=r"temporaries\(\)\s+allocated\s+7.6"):
        checks.assert_in_place(temporaries, np.random.default_rng(1).random(1_000_000))
    array = np.random.default_rng(1).random(1_000_000)
    with pytest.raises(AssertionError, match=words("allocated")):
        checks.assert_in_place(rebinds, array)


def test_a_copy_kept_outside_numpy_fails_on_the_total_drop():
    grid = np.ones((1000, 1000))
    checks.track(grid, "grid")
    backup = bytearray(grid.tobytes())
    del grid
    with pytest.raises(
        AssertionError,
        match=r"a\s+full\s+copy\s+of\s+its\s+data\s+is\s+still\s+in\s+memory\s+\(bytearray",
    ):
        checks.assert_freed("grid", expected_nbytes=8_000_000)
    del backup
    checks.assert_freed("grid", expected_nbytes=8_000_000)


# The search for copies is skipped when the tracer holds no allocation as large as the data
# (autograder/checks/copies.py). These copies hide from the tracer: each must still be found.


def test_a_copy_the_tracer_lost_in_a_restart_is_still_found(monkeypatch):
    monkeypatch.delitem(sys.modules, "mmap", raising=False)  # only the restart may disable the skip
    big = np.ones(1_000_000)
    checks.track(big, "big")
    backup = big.copy()
    tracemalloc.stop()  # erases every trace: the copy's buffer is no longer seen
    tracemalloc.start()
    del big
    with pytest.raises(AssertionError, match=words("a full copy of its data is still in memory")):
        checks.assert_freed("big")
    del backup


def test_a_copy_in_mapped_memory_the_tracer_never_sees_is_found():
    big = np.ones(1_000_000)
    checks.track(big, "big")
    mapped = mmap.mmap(-1, big.nbytes)
    backup = np.frombuffer(mapped, dtype=big.dtype)
    backup[:] = big
    del big
    with pytest.raises(AssertionError, match=words("a full copy of its data is still in memory")):
        checks.assert_freed("big")


def test_a_copy_in_a_larger_bytes_object_is_found():
    big = np.arange(1_000_000.0)
    checks.track(big, "big")
    backup = np.frombuffer(b"header.." + big.tobytes(), offset=8)
    del big
    with pytest.raises(AssertionError, match=words("a full copy of its data is still in memory")):
        checks.assert_freed("big")
    del backup
    checks.assert_freed("big")
