"""Fixtures of the checks' kernel tests: one Jupyter kernel shared by a test module, reset to a
fresh notebook between tests."""

from collections.abc import Iterator
from contextlib import ExitStack, suppress

import pytest

from ..conftest import Kernel, started_kernel

# What a fresh kernel does not have and a test may leave behind in a shared one: the last
# error and its traceback, tracked labels, a disabled collector, the tracer (SETUP starts it
# again), an array a test stored on numpy (np.saved), and the notebook's names and output cache.
RESET = """
from autograder import checks
checks.forget_last_error()
checks._tracked.clear()
import gc, tracemalloc, numpy
gc.enable()
tracemalloc.stop()
vars(numpy).pop("saved", None)
%reset -f
"""


class SharedKernel:
    """One kernel for the module: starting one per test cost ~1 s each (2 s under load)."""

    def __init__(self, stack: ExitStack):
        self.stack = stack
        self.current = stack.enter_context(started_kernel())

    def reset(self) -> Kernel:
        done = None
        with suppress(TimeoutError):
            done = self.current.run(RESET, timeout=30)
        if done is None or done.error or done.stderr:  # a test left it dead or busy
            self.current = self.stack.enter_context(started_kernel())
        return self.current


@pytest.fixture(scope="module")
def shared_kernel() -> Iterator[SharedKernel]:
    with ExitStack() as stack:
        yield SharedKernel(stack)


@pytest.fixture
def notebook(shared_kernel: SharedKernel) -> Kernel:
    """The module's kernel, as a fresh one would be but for its execution count."""
    return shared_kernel.reset()
