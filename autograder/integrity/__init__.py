"""Evidence that a submission tampered with its own grading, gathered where it cannot be forged.

A student's code runs in the same kernel as the hidden tests, so it can change how every
later cell runs: patch a check into a no-op, stop the memory tracer, add an IPython hook
that rewrites or silences the test cells. The grader does not take the kernel's word for
it. Three kinds of evidence, each an :class:`Evidence`:

* **A static read** of every cell the student wrote (:func:`scan_code`,
  :func:`scan_notebook`), done in the grading process before the notebook runs: the
  kernel cannot touch it. It flags the *means* of tampering (assigning into ``np`` or
  ``checks``, ``sys.settrace``, ``get_ipython().ast_transformers``, ``exec`` of a hidden
  string, ...), never a wrong answer.
* **A probe** (:func:`probe_code`, :func:`read_probe`): a one-line call run silently in
  the kernel right after it starts and before each graded test cell. It checks the
  kernel's state (the check functions' code, NumPy's and the builtins' callables,
  tracemalloc, IPython's hooks, trace functions, threads) against a :func:`fingerprint`
  computed in the grading process from the same installed files: the first run, before
  any student code, must match the fingerprint's digest (carried as a literal), and
  every later run must find the very objects the first one found. It is the kernel's
  word, but a kernel that lies must first have been made to lie, by code the static read
  sees, or by obfuscation, which it flags too.
* **A cell inspection** of the submitted notebook against the release
  (:func:`inspect_cells`), before nbgrader puts the locked cells back: edited, deleted,
  duplicated or moved locked cells, changed nbgrader metadata, another kernel.

Flag kinds (:data:`FLAGS` describes each): ``monkeypatch``, ``rebinds-protected-name``,
``ipython-hook``, ``trace-function``, ``tracker-tampering``, ``exits-kernel``,
``shell-or-network``, ``obfuscation``, ``fake-value``, ``edited-locked-cell``,
``deleted-graded-cell``, ``duplicated-cell``, ``moved-cell``, ``changed-metadata``,
``changed-kernelspec``, ``probe-failed``, ``probe-no-reply``.

Honest code must never be flagged: ``globals().pop("readings")``, ``Out.clear()``,
``%xdel report``, ``np.random.default_rng(0)``, ``checks.holders_of("grid")``, plain
classes with ``self.x = ...`` all pass. The tests run the scanner over every example
submission and every solution cell of the course and require zero evidence.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import re
import secrets
import sys
import types
import warnings
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import nbformat

__all__ = [
    "CHECKS_PUBLIC",
    "FLAGS",
    "PROBE_PREFIX",
    "PROTECTED_BUILTINS",
    "Evidence",
    "collect_imports",
    "fingerprint",
    "fingerprint_digest",
    "inspect_cells",
    "instructor_sources",
    "new_nonce",
    "probe_code",
    "read_probe",
    "restored_ids",
    "scan_code",
    "scan_notebook",
]

FLAGS: dict[str, str] = {
    "monkeypatch": "changes an attribute or the contents of a protected module or object "
    "(numpy, the checks, tracemalloc, gc, builtins, sys, os, ... or anything imported)",
    "rebinds-protected-name": "binds a name the tests rely on (checks, np, isinstance, ...) "
    "to something else, or writes the notebook's namespace through globals()/vars()",
    "ipython-hook": "reaches into IPython (get_ipython(), a magic that changes the shell, "
    "IPython internals): transformers, custom exception handlers, event callbacks",
    "trace-function": "installs a trace, profile or audit hook, or a callback the "
    "interpreter calls in the middle of the tests (gc.callbacks, a debugger)",
    "tracker-tampering": "touches the memory tracker or the checks' internals: tracemalloc "
    "other than reading, checks.track, private checks/autograder names, gc.get_objects, "
    "memory the tracer does not see (mmap, np.memmap, mmap_mode), the peak-memory counter",
    "exits-kernel": "kills or stops the kernel (os._exit, sys.exit, exit(), signals, ctypes, "
    "faulthandler)",
    "shell-or-network": "runs a shell command or another process, opens a network connection, "
    "starts a thread, or writes files (!cmd, %%bash, subprocess, socket, threading)",
    "obfuscation": "runs code the static read cannot see (exec, eval, compile, __import__, "
    "importlib, pickle), reaches objects through dunder attributes or computed names, or "
    "passes a protected module around as a value",
    "fake-value": "defines a value that lies about its type or its comparisons (a subclass of "
    "str/int/float/an ndarray, __class__, __instancecheck__, __array_function__, a metaclass)",
    "edited-locked-cell": "a locked or test cell's source differs from both the release and "
    "the instructor's version",
    "deleted-graded-cell": "a cell of the release (graded or locked) is missing",
    "duplicated-cell": "a grade_id appears more than once",
    "moved-cell": "the release's cells are in another order",
    "changed-metadata": "the nbgrader metadata of a cell changed (grade, locked, solution, "
    "points, cell type) or names a grade_id the release does not have",
    "changed-kernelspec": "the notebook asks for another kernel",
    "probe-failed": "the probe found the kernel's state changed (see the detail)",
    "probe-no-reply": "the probe printed no well-formed reply: its output was swallowed, "
    "rewritten, or the probe did not run",
    # Seen from outside the kernel by the grading process (autograder.pipeline.protected_execute):
    "rss-over-budget": "assert_peak_below passed, but the kernel's resident memory peaked "
    "above the budget during the test: memory the tracer does not see held the data",
}


@dataclass(frozen=True)
class Evidence:
    """One thing seen that a fair submission does not do."""

    flag: str  # a key of FLAGS
    cell: str  # the grade_id, "cell 12" (1-based) for cells without one, or "notebook"
    detail: str  # for the instructor: what was seen, quoting the offending line

    def describe(self) -> str:
        return f"[{self.flag}] {self.cell}: {self.detail}"


# --------------------------------------------------------------------------------------
# The static read
# --------------------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Names that refer to a protected module when a notebook has not imported them itself.
_DEFAULT_MODULE_NAMES: dict[str, str] = {
    "np": "numpy",
    "numpy": "numpy",
    "checks": "autograder.checks",
    "autograder": "autograder",
    "tracemalloc": "tracemalloc",
    "gc": "gc",
    "weakref": "weakref",
    "psutil": "psutil",
    "builtins": "builtins",
    "sys": "sys",
    "os": "os",
    "IPython": "IPython",
}

# Builtins the test cells (and the probe) call by name: a global of the same name in the
# notebook would replace them for every later cell. Kept in step with the test cells by
# tests/integrity/test_integrity.py. Names honest students shadow (sum, max, min, id, type, ...)
# are not here: no test cell uses them.
PROTECTED_BUILTINS = _words(
    "float globals int isinstance len range str print AssertionError exec eval "
    "compile __import__ getattr hasattr setattr delattr super object issubclass bool "
    "locals vars repr get_ipython"
)

# The checks a student may call: reading, measuring, asserting. Everything else in
# autograder (track, _tracked, memory.*, references.*) is the grader's.
CHECKS_PUBLIC = _words(
    "assert_freed assert_in_place assert_no_leak assert_peak_below forget_last_error "
    "holders_of measure numpy_bytes_now start_tracing"
)

_ALLOWED_MAGICS = _words(
    "xdel reset reset_selective time timeit matplotlib who whos who_ls precision "
    "capture pinfo pinfo2 psearch pdoc pdef psource pfile pwd lsmagic magic quickref "
    "history"
)
_SHELL_MAGICS = _words(
    "system sx bash sh script perl ruby python python2 python3 pypy writefile file "
    "html javascript js svg latex"
)
_TRACE_MAGICS = frozenset({"pdb", "debug", "prun", "tb"})

_TRACEMALLOC_READ = _words(
    "get_traced_memory take_snapshot is_tracing get_tracemalloc_memory "
    "get_object_traceback get_traceback_limit DomainFilter Filter BaseFilter Snapshot "
    "Statistic StatisticDiff Trace Traceback Frame"
)
_GC_ALLOWED = _words(
    "collect isenabled enable disable get_count get_threshold is_tracked is_finalized "
    "get_stats get_freeze_count DEBUG_STATS"
)
_GC_HOOKS = frozenset({"callbacks"})
_SYS_ALLOWED = _words(
    "getsizeof getrefcount last_type last_value last_traceback last_exc version "
    "version_info hexversion platform maxsize byteorder float_info int_info "
    "implementation stdout stderr executable getrecursionlimit getdefaultencoding "
    "float_repr_style api_version path argv flags getallocatedblocks exc_info "
    "exception prefix base_prefix maxunicode getswitchinterval thread_info copyright"
)
_SYS_TRACE = _words(
    "settrace setprofile gettrace getprofile monitoring addaudithook audit "
    "call_tracing _settraceallthreads _setprofileallthreads breakpointhook "
    "__breakpointhook__"
)
_SYS_HOOKS = frozenset(
    {"displayhook", "excepthook", "__displayhook__", "__excepthook__", "unraisablehook"}
)
_OS_EXIT = frozenset({"_exit", "abort", "kill", "killpg"})
_OS_SHELL_PREFIXES = ("system", "popen", "exec", "spawn", "fork", "posix_spawn", "startfile")
_OS_WRITES = _words(
    "remove unlink rename renames replace rmdir removedirs mkdir makedirs chmod chown "
    "lchown symlink link truncate write open putenv unsetenv chdir fchdir chroot "
    "setuid setgid nice setpgid setsid dup2 mkfifo mknod"
)

# Imports that are evidence by themselves, by top-level module name.
_IMPORT_FLAGS: dict[str, str] = {
    "ctypes": "exits-kernel",
    "_ctypes": "exits-kernel",
    "signal": "exits-kernel",
    "faulthandler": "exits-kernel",
    "subprocess": "shell-or-network",
    "socket": "shell-or-network",
    "ssl": "shell-or-network",
    "urllib": "shell-or-network",
    "urllib3": "shell-or-network",
    "http": "shell-or-network",
    "requests": "shell-or-network",
    "httpx": "shell-or-network",
    "ftplib": "shell-or-network",
    "smtplib": "shell-or-network",
    "telnetlib": "shell-or-network",
    "multiprocessing": "shell-or-network",
    "concurrent": "shell-or-network",
    "threading": "shell-or-network",
    "_thread": "shell-or-network",
    "asyncio": "shell-or-network",
    "pty": "shell-or-network",
    "shutil": "shell-or-network",
    "sched": "shell-or-network",
    "importlib": "obfuscation",
    "builtins": "obfuscation",
    "__builtin__": "obfuscation",
    "inspect": "obfuscation",
    "code": "obfuscation",
    "codeop": "obfuscation",
    "runpy": "obfuscation",
    "pickle": "obfuscation",
    "_pickle": "obfuscation",
    "marshal": "obfuscation",
    "dill": "obfuscation",
    "cloudpickle": "obfuscation",
    "shelve": "obfuscation",
    "sqlite3": "shell-or-network",
    "types": "obfuscation",
    "pdb": "trace-function",
    "bdb": "trace-function",
    "trace": "trace-function",
    "cProfile": "trace-function",
    "profile": "trace-function",
    "mmap": "tracker-tampering",
    "_tracemalloc": "tracker-tampering",
    "ipykernel": "ipython-hook",
    "jupyter_client": "ipython-hook",
    "traitlets": "ipython-hook",
    "matplotlib_inline": "ipython-hook",
}
# NumPy arrays backed by a mapped file: their memory is outside tracemalloc's NumPy domain.
_UNTRACED_NUMPY = frozenset({"memmap", "open_memmap"})
_TYPES_ALLOWED = frozenset({"SimpleNamespace", "MappingProxyType", "GeneratorType", "NoneType"})

_SAFE_DUNDER_ATTRS = _words(
    "__name__ __qualname__ __doc__ __class__ __module__ __version__ "
    "__array_interface__ __len__ __init__ __repr__ __str__ __iter__ __next__ "
    "__enter__ __exit__ __contains__ __getitem__ __sizeof__ __annotations__ "
    "__dataclass_fields__ __match_args__ __traceback__"
)
# Introspection attributes that reach frames, code and other modules' globals.
_FRAME_ATTRS = _words(
    "f_globals f_locals f_back f_builtins f_code f_trace f_lineno tb_frame gi_frame "
    "cr_frame ag_frame gi_code cr_code co_code co_consts co_names cell_contents"
)
_SYS_LAST = frozenset({"last_type", "last_value", "last_traceback", "last_exc"})
_THREADING_TRACE = frozenset(
    {"settrace", "setprofile", "settrace_all_threads", "setprofile_all_threads"}
)
# Attribute chains that name whole modules (passing one around is like passing `np`).
_KNOWN_SUBMODULES = _words(
    "numpy.random numpy.lib numpy.linalg numpy.fft numpy.ma numpy.char numpy.core "
    "numpy._core numpy.testing numpy.polynomial numpy.strings numpy.rec numpy.dtypes "
    "numpy.exceptions numpy.typing os.path autograder.checks autograder.checks.memory "
    "autograder.checks.references IPython.display IPython.core"
)
_SAFE_DUNDER_NAMES = frozenset({"__name__", "__doc__"})
# Class-body names that make an object lie about its type, its comparisons, or NumPy's view of it.
_FAKE_DUNDERS = _words(
    "__class__ __instancecheck__ __subclasscheck__ __getattribute__ "
    "__array_function__ __array_ufunc__ __array__ __array_interface__ "
    "__array_struct__ __array_priority__ __array_wrap__ __array_finalize__ "
    "__array_namespace__ __init_subclass__ __class_getitem__ __set_name__"
)
# Builtin value types whose subclasses can pass an isinstance check and then lie.
_VALUE_TYPES = frozenset({"str", "int", "float", "complex", "bytes", "bool", "bytearray"})

_NAMESPACE_READERS = frozenset({"pop", "get", "keys", "items", "values", "copy", "__contains__"})
_NAMESPACE_SAFE_CONSUMERS = _words(
    "print len list sorted set repr str tuple any all enumerate iter dir"
)
_MODULE_SAFE_CONSUMERS = frozenset(
    {"print", "repr", "str", "type", "id", "dir", "help", "isinstance", "hasattr", "callable"}
)
_MUTATORS = _words(
    "append extend insert remove pop popitem clear update setdefault add discard "
    "__setitem__ __delitem__ sort reverse"
)
# Imported libraries whose settings students change honestly (plt.rcParams[...] = ...,
# pd.options.display...) and that cannot change a grade.
_DISPLAY_LIBRARIES = frozenset({"matplotlib", "pandas", "seaborn"})
_EXIT_EXCEPTIONS = frozenset({"SystemExit", "KeyboardInterrupt", "GeneratorExit", "BaseException"})


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


@functools.cache
def _installed(top: str) -> bool:
    """Whether the top-level module ``top`` comes with Python or the environment's packages
    (looked up in the grading process, without importing anything)."""
    import importlib.util
    import os

    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    if spec.origin in ("built-in", "frozen"):
        return True
    places = [spec.origin] if spec.origin else list(spec.submodule_search_locations or ())
    return bool(places) and all(
        _under(os.path.realpath(place), _roots()) or _under(place, _roots()) for place in places
    )


def _transform(source: str) -> str:
    """The Python source IPython would run for ``source`` (magics, ``!``, ``?`` rewritten)."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


_BARRY_FLAG = 0x400000  # __future__.barry_as_FLUFL.compiler_flag


def _parse(source: str, future_flags: int = 0) -> ast.Module | None:
    """The cell's syntax tree as the kernel would compile it; None when it does not parse.

    A ``from __future__ import barry_as_FLUFL`` in an earlier cell changes how IPython
    parses the later ones (``<>``): ``future_flags`` carries it, and a cell that only
    parses with it is parsed with it (a student cannot hide code behind a parse error).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escape sequences and the like
        for flags in dict.fromkeys((future_flags, future_flags | _BARRY_FLAG)):
            try:
                return compile(
                    source, "<cell>", "exec", flags=ast.PyCF_ONLY_AST | flags, dont_inherit=True
                )
            except (SyntaxError, ValueError):
                continue
    return None


def _line(source_lines: list[str], node: ast.AST) -> str:
    number = getattr(node, "lineno", None)
    if number is None or not 0 < number <= len(source_lines):
        return ""
    text = source_lines[number - 1].strip()
    return text if len(text) <= 160 else text[:157] + "..."


def _const_str(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _chain(node: ast.AST, namespaces: Collection[str] = ()) -> list[str] | None:
    """``np.random.default_rng`` -> ['np', 'random', 'default_rng'].

    Also through a constant ``getattr``, a walrus, and a lookup of the notebook's namespace
    with a constant key (``globals()["np"].ones`` is ``np.ones``; ``namespaces`` names the
    variables known to hold ``globals()``).
    """
    parts: list[str] = []
    while True:
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "getattr"
            and len(node.args) >= 2
            and _const_str(node.args[1]) is not None
        ):
            parts.append(_const_str(node.args[1]))  # type: ignore[arg-type]
            node = node.args[0]
        elif isinstance(node, ast.NamedExpr):
            node = node.value
        elif isinstance(node, ast.Name):
            parts.append(node.id)
            return parts[::-1]
        else:
            lookup = _namespace_lookup(node, namespaces)
            if lookup is None or lookup[1] is None:
                return None
            parts.append(lookup[1])
            return parts[::-1]


def _namespace_lookup(
    node: ast.AST, namespaces: Collection[str] = ()
) -> tuple[ast.AST, str | None] | None:
    """For ``globals()["x"]`` or ``globals().get("x")``: (the lookup, "x" or None if computed)."""

    def is_namespace(value: ast.AST) -> bool:
        return _is_namespace_call(value) or (isinstance(value, ast.Name) and value.id in namespaces)

    if isinstance(node, ast.Subscript) and is_namespace(node.value):
        return node, _const_str(node.slice)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in {"get", "pop", "setdefault"}
        and is_namespace(node.func.value)
        and node.args
    ):
        return node, _const_str(node.args[0])
    return None


def _root(node: ast.AST) -> ast.AST:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node


def _inert(value: ast.AST | None) -> bool:
    """A literal (``str = "abc"``): shadowing a builtin with it breaks a test, never passes one."""
    if isinstance(value, (ast.Constant, ast.JoinedStr)):
        return True
    if isinstance(value, (ast.List, ast.Tuple, ast.Set)):
        return all(_inert(item) for item in value.elts)
    if isinstance(value, ast.Dict):
        return all(_inert(item) for item in [*value.keys, *value.values] if item is not None)
    if isinstance(value, ast.BinOp):
        return _inert(value.left) and _inert(value.right)
    if isinstance(value, ast.UnaryOp):
        return _inert(value.operand)
    return False


def _function_locals(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> set[str]:
    """The plain variables of a function: its parameters and what it assigns, not what it
    declares global nor what it imports (an imported name stays protected)."""
    arguments = node.args
    names = {
        argument.arg
        for argument in [
            *arguments.posonlyargs,
            *arguments.args,
            *arguments.kwonlyargs,
            *([arguments.vararg] if arguments.vararg else []),
            *([arguments.kwarg] if arguments.kwarg else []),
        ]
    }
    declared: set[str] = set()
    body = node.body if isinstance(node.body, list) else [node.body]
    pending: list[ast.AST] = list(body)
    while pending:
        item = pending.pop()
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(item.name)
            continue  # its own scope
        if isinstance(item, ast.Lambda):
            continue
        if isinstance(item, (ast.Global, ast.Nonlocal)):
            declared.update(item.names)
        elif isinstance(item, (ast.Import, ast.ImportFrom)):
            declared.update((alias.asname or alias.name).split(".")[0] for alias in item.names)
        elif isinstance(item, ast.Name) and isinstance(item.ctx, ast.Store):
            names.add(item.id)
        pending.extend(ast.iter_child_nodes(item))
    return names - declared


def _is_get_ipython_call(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "get_ipython"
    )


def _is_namespace_call(node: ast.AST) -> bool:
    """``globals()``, ``locals()`` or ``vars()`` without an argument: the notebook's namespace."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in {"globals", "locals", "vars"}
        and not node.args
        and not node.keywords
    )


class _Scanner(ast.NodeVisitor):
    """Walks one cell's syntax tree and records what it does to protected things."""

    def __init__(
        self,
        source: str,
        cell: str,
        imports: Mapping[str, str],
        module_names: Collection[str],
        strict: bool,
        future_flags: int,
    ):
        self.lines = source.splitlines()
        self.cell = cell
        self.strict = strict
        self.future_flags = future_flags
        self.evidence: list[Evidence] = []
        self.imports = dict(imports)  # names bound by imports anywhere in the notebook
        self.targets: dict[str, str] = dict(_DEFAULT_MODULE_NAMES)  # name -> dotted target
        self.targets.update(imports)
        self.module_names: set[str] = set(module_names)  # names bound to whole modules
        self.namespace_aliases: set[str] = set()
        self.parents: dict[int, ast.AST] = {}
        self.scopes: list[set[str]] = [set()]  # names declared global, per function scope
        self.depth = 0  # function and class bodies entered
        self.local_names: list[set[str]] = []  # per function: its own variables

    # -- recording -------------------------------------------------------------------------
    def flag(self, kind: str, node: ast.AST, what: str) -> None:
        line = _line(self.lines, node)
        evidence = Evidence(kind, self.cell, f"{what}: `{line}`" if line else what)
        if evidence not in self.evidence:
            self.evidence.append(evidence)

    def parent(self, node: ast.AST) -> ast.AST | None:
        return self.parents.get(id(node))

    def chain(self, node: ast.AST) -> list[str] | None:
        return _chain(node, self.namespace_aliases)

    # -- what a name or chain refers to ------------------------------------------------------
    def resolve(self, parts: list[str] | None) -> str | None:
        """The dotted target of a chain whose root is an imported or protected name (and not
        a local variable of the function being read)."""
        if not parts or parts[0] not in self.targets:
            return None
        if self.local_names and parts[0] in self.local_names[-1]:
            return None
        return ".".join([self.targets[parts[0]], *parts[1:]])

    def protected_target(self, node: ast.AST) -> str | None:
        """The dotted path of the protected thing ``node`` refers to, if it refers to one:
        anything the notebook imports (but plotting and table display settings), the
        modules grading relies on, and their aliases."""
        target = self.resolve(self.chain(node))
        if target is None or target.split(".")[0] in _DISPLAY_LIBRARIES:
            return None
        return target

    def is_module(self, name: str) -> bool:
        """Whether ``name`` is bound to a whole module (not to a function imported from one)."""
        if name not in self.targets or (self.local_names and name in self.local_names[-1]):
            return False
        target = self.targets[name]
        return name in self.module_names or "." not in target or target in _KNOWN_SUBMODULES

    # -- entry ---------------------------------------------------------------------------
    def run(self, tree: ast.Module) -> list[Evidence]:
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                self.parents[id(child)] = node
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    name = alias.asname or alias.name.split(".")[0]
                    target = alias.name if alias.asname else name
                    self.check_import_binding(node, name, target)
                    self.targets[name] = target
                    self.imports[name] = target
                    self.module_names.add(name)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for alias in node.names:
                    if alias.name != "*":
                        name = alias.asname or alias.name
                        target = f"{node.module}.{alias.name}"
                        self.check_import_binding(node, name, target)
                        self.targets[name] = target
                        self.imports[name] = target
        self.collect_aliases(tree)
        self.visit(tree)
        return self.evidence

    def collect_aliases(self, tree: ast.AST) -> None:
        """``x = np`` or ``r = np.random`` make x and r protected too; ``g = globals()`` a namespace."""
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
            ):
                name, value = node.targets[0].id, node.value
            elif isinstance(node, ast.NamedExpr) and isinstance(node.target, ast.Name):
                name, value = node.target.id, node.value
            else:
                continue
            if _is_namespace_call(value):
                self.namespace_aliases.add(name)
                continue
            target = self.protected_target(value)
            if target is not None and name not in self.targets:
                self.targets[name] = target
                self.imports[name] = target
                parts = self.chain(value) or []
                if (len(parts) == 1 and self.is_module(parts[0])) or target in _KNOWN_SUBMODULES:
                    self.module_names.add(name)

    # -- imports -------------------------------------------------------------------------
    def check_import_binding(self, node: ast.AST, name: str, target: str) -> None:
        canonical = _DEFAULT_MODULE_NAMES.get(name)
        if canonical is not None and target != canonical:
            self.flag(
                "rebinds-protected-name", node, f"binds the protected name `{name}` to {target}"
            )
        elif name in PROTECTED_BUILTINS:
            self.flag("rebinds-protected-name", node, f"an import shadows the builtin `{name}`")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.check_module_use(node, alias.name, None)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level:
            self.flag("obfuscation", node, "a relative import")
            return
        if module == "__future__":
            if any(alias.name == "barry_as_FLUFL" for alias in node.names):
                self.flag("obfuscation", node, "changes how later cells parse (barry_as_FLUFL)")
            return
        for alias in node.names:
            if alias.name == "*":
                if module.split(".")[0] not in {"numpy", "math"}:
                    self.flag(
                        "rebinds-protected-name",
                        node,
                        f"`from {module} import *` can rebind any name",
                    )
                self.check_module_use(node, module, None)
            else:
                self.check_module_use(node, module, alias.name)

    def check_module_use(self, node: ast.AST, module: str, member: str | None) -> None:
        """Imports of modules that are evidence by themselves, and of forbidden members."""
        top = module.split(".")[0]
        what = module + (f".{member}" if member else "")
        if top in _IMPORT_FLAGS and not (top == "types" and member in _TYPES_ALLOWED):
            self.flag(_IMPORT_FLAGS[top], node, f"imports {what}")
        elif top and not _installed(top):
            self.flag(
                "obfuscation",
                node,
                f"imports `{top}`, which is not an installed module: code the static read "
                "cannot see (a file submitted or written next to the notebook?)",
            )
        elif top == "IPython" and not (
            what.startswith(("IPython.display", "IPython.core.display"))
        ):
            self.flag("ipython-hook", node, f"imports IPython internals ({what})")
        else:
            self.check_attribute_use(node, what.split("."))

    # -- bindings ------------------------------------------------------------------------
    def binds_global(self, name: str) -> bool:
        return self.depth == 0 or name in self.scopes[-1]

    def check_binding(self, node: ast.AST, name: str, value: ast.AST | None = None) -> None:
        if not self.binds_global(name):
            return
        canonical = _DEFAULT_MODULE_NAMES.get(name)
        if canonical is not None:
            if value is not None and self.resolve(self.chain(value)) == canonical:
                return  # np = numpy: the same module
            self.flag("rebinds-protected-name", node, f"rebinds `{name}`, which the tests use")
        elif name in PROTECTED_BUILTINS and not _inert(value):
            self.flag(
                "rebinds-protected-name", node, f"shadows the builtin `{name}` for every later cell"
            )

    def check_target(self, target: ast.AST, value: ast.AST | None, *, delete: bool = False) -> None:
        if isinstance(target, ast.Name):
            if not delete:
                self.check_binding(target, target.id, value)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self.check_target(element, None, delete=delete)
        elif isinstance(target, ast.Starred):
            self.check_target(target.value, None, delete=delete)
        elif isinstance(target, ast.Attribute):
            self.check_attribute_store(target, delete)
        elif isinstance(target, ast.Subscript):
            self.check_subscript_store(target, delete)

    def check_attribute_store(self, target: ast.Attribute, delete: bool) -> None:
        verb = "deletes" if delete else "assigns"
        root = _root(target)
        protected = self.protected_target(target.value)
        if protected is None and isinstance(root, ast.Name) and root is not target.value:
            protected = self.protected_target(root)  # sys.modules["numpy"].ones = ...
        if protected is not None:
            if protected == "sys" and target.attr in _SYS_LAST and not delete:
                return  # what Jupyter does with an uncaught error, and what forget_last_error undoes
            self.flag("monkeypatch", target, f"{verb} `{protected}.{target.attr}`")
        elif _is_get_ipython_call(root):
            self.flag("ipython-hook", target, f"{verb} an attribute of the IPython shell")
        elif (
            isinstance(root, ast.Call)
            and isinstance(root.func, ast.Name)
            and root.func.id == "type"
        ):
            self.flag(
                "monkeypatch", target, f"{verb} an attribute of a class reached through type()"
            )
        elif _is_dunder(target.attr) or target.attr in _FRAME_ATTRS:
            self.flag("obfuscation", target, f"{verb} the attribute `{target.attr}`")
        elif (lookup := _namespace_lookup(target.value, self.namespace_aliases)) and lookup[
            1
        ] is None:
            self.flag("obfuscation", target, f"{verb} an attribute of a global chosen at run time")

    def check_subscript_store(self, target: ast.Subscript, delete: bool) -> None:
        container = target.value
        if self.is_namespace(container):
            if delete:
                return  # del globals()["x"] only unbinds a name
            key = _const_str(target.slice)
            if key is None:
                self.flag(
                    "rebinds-protected-name",
                    target,
                    "writes the notebook's namespace under a computed name",
                )
            else:
                self.check_binding(target, key)
            return
        protected = self.protected_target(container)
        if protected is not None:
            self.flag(
                "monkeypatch",
                target,
                f"{'deletes from' if delete else 'writes into'} `{protected}`",
            )
        elif _is_get_ipython_call(_root(container)):
            self.flag("ipython-hook", target, "writes into the IPython shell's state")

    def is_namespace(self, node: ast.AST) -> bool:
        return _is_namespace_call(node) or (
            isinstance(node, ast.Name) and node.id in self.namespace_aliases
        )

    # -- statements ----------------------------------------------------------------------
    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self.check_target(target, node.value)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.check_target(node.target, None)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None or not isinstance(node.target, ast.Name):
            self.check_target(node.target, node.value)
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self.check_target(target, None, delete=True)
        self.generic_visit(node)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.check_target(node.target, None)
        self.generic_visit(node)

    visit_AsyncFor = visit_For

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            if item.optional_vars is not None:
                self.check_target(item.optional_vars, None)
        self.generic_visit(node)

    visit_AsyncWith = visit_With

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.check_target(node.target, node.value)
        self.generic_visit(node)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.check_binding(node, node.name)
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> None:
        self.scopes[-1].update(node.names)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        if not isinstance(node, ast.Lambda):
            self.check_binding(node, node.name)
            for decorator in node.decorator_list:
                self.visit(decorator)
            if node.returns is not None:
                self.visit(node.returns)
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.visit(default)
        self.depth += 1
        self.scopes.append(set())
        self.local_names.append(_function_locals(node))
        for statement in node.body if isinstance(node.body, list) else [node.body]:
            self.visit(statement)
        self.local_names.pop()
        self.scopes.pop()
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.check_binding(node, node.name)
        for base in node.bases:
            parts = self.chain(base) or []
            target = self.resolve(parts) or ""
            if (parts and len(parts) == 1 and parts[0] in _VALUE_TYPES) or target.startswith(
                "numpy."
            ):
                self.flag("fake-value", node, f"class {node.name} subclasses {'.'.join(parts)}")
        for keyword in node.keywords:
            if keyword.arg == "metaclass":
                self.flag("fake-value", node, f"class {node.name} has a metaclass")
        for statement in node.body:
            names: list[str] = []
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names = [statement.name]
            elif isinstance(statement, ast.Assign):
                names = [t.id for t in statement.targets if isinstance(t, ast.Name)]
            elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                names = [statement.target.id]
            for name in names:
                if name in _FAKE_DUNDERS:
                    self.flag("fake-value", statement, f"class {node.name} defines {name}")
        for item in [*node.bases, *node.keywords, *node.decorator_list]:
            self.visit(item)
        self.depth += 1  # a class body binds class attributes, not globals
        self.scopes.append(set())
        for statement in node.body:
            self.visit(statement)
        self.scopes.pop()
        self.depth -= 1

    def visit_Raise(self, node: ast.Raise) -> None:
        exception = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        if isinstance(exception, ast.Name) and exception.id in _EXIT_EXCEPTIONS:
            self.flag("exits-kernel", node, f"raises {exception.id}")
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self.check_binding(node, node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self.check_binding(node, node.name)

    # -- expressions ---------------------------------------------------------------------
    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and "clear_refs" in node.value:
            self.flag(
                "tracker-tampering",
                node,
                "names /proc/.../clear_refs, which resets the peak memory the grader reads",
            )

    def visit_Name(self, node: ast.Name) -> None:
        if not isinstance(node.ctx, ast.Load):
            return
        name = node.id
        if _is_dunder(name) and name not in _SAFE_DUNDER_NAMES:
            self.flag("obfuscation", node, f"uses `{name}`")
        elif name in {"exec", "eval", "compile"}:
            self.flag("obfuscation", node, f"uses {name}(), whose code the static read cannot see")
        elif name == "breakpoint":
            self.flag("trace-function", node, "starts the debugger")
        elif name in {"exit", "quit"}:
            self.flag("exits-kernel", node, f"calls {name}()")
        elif name == "get_ipython":
            self.check_get_ipython(node)
        elif name in self.namespace_aliases:
            self.check_namespace_use(node)
        elif name in {"setattr", "delattr"}:
            self.check_setattr(node)
        elif self.is_module(name):
            self.check_module_value(node, name)

    def check_module_value(self, node: ast.AST, what: str) -> None:
        """A protected module used as a value: passed to a function, stored, returned.

        The function it is passed to can then patch it under another name.
        """
        parent = self.parent(node)
        if isinstance(parent, ast.Attribute) and parent.value is node:
            return
        if isinstance(parent, (ast.Assign, ast.NamedExpr)) and parent.value is node:
            return  # an alias: tracked by collect_aliases
        if isinstance(parent, ast.Compare):
            return
        if isinstance(parent, ast.Call) and node in parent.args:
            func = parent.func
            if isinstance(func, ast.Name) and func.id in _MODULE_SAFE_CONSUMERS:
                return
            if (
                isinstance(func, ast.Name)
                and func.id in {"getattr", "setattr", "delattr", "vars"}
                and parent.args[0] is node
            ):
                return  # judged on their own
        self.flag("obfuscation", node, f"passes the module `{what}` around as a value")

    def check_setattr(self, node: ast.Name) -> None:
        call = self.parent(node)
        if not (isinstance(call, ast.Call) and call.func is node):
            self.flag("obfuscation", node, f"uses {node.id} as a value")
            return
        if len(call.args) < 2:
            return
        target, name = call.args[0], _const_str(call.args[1])
        protected = self.protected_target(target)
        if protected is not None:
            self.flag("monkeypatch", call, f"{node.id} on `{protected}`")
        elif _is_get_ipython_call(_root(target)):
            self.flag("ipython-hook", call, f"{node.id} on the IPython shell")
        elif self.is_namespace(target):
            self.flag("rebinds-protected-name", call, f"{node.id} on the notebook's namespace")
        elif name is None:
            self.flag("obfuscation", call, f"{node.id} with a computed attribute name")
        elif _is_dunder(name) or name in _FRAME_ATTRS:
            self.flag("obfuscation", call, f"{node.id} of `{name}`")

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name):
            if func.id == "getattr" and len(node.args) >= 2:
                name = _const_str(node.args[1])
                if name is None:
                    self.flag("obfuscation", node, "getattr with a computed attribute name")
                else:
                    if (
                        _is_dunder(name) and name not in _SAFE_DUNDER_ATTRS
                    ) or name in _FRAME_ATTRS:
                        self.flag("obfuscation", node, f"getattr of `{name}`")
                    parent = self.parent(node)
                    if not (isinstance(parent, ast.Attribute) and parent.value is node):
                        self.check_attribute_use(node, self.chain(node))
            elif func.id == "vars" and node.args:
                protected = self.protected_target(node.args[0])
                if protected is not None:
                    self.flag(
                        "obfuscation", node, f"reaches the namespace of `{protected}` with vars()"
                    )
            elif func.id == "type" and len(node.args) == 3:
                self.flag("obfuscation", node, "creates a class with type(name, bases, namespace)")
            elif func.id == "open":
                self.check_open(node)
        elif isinstance(func, ast.Attribute) and func.attr in _MUTATORS:
            receiver = self.chain(func.value)
            target = self.protected_target(func.value)
            if (
                target is not None
                and receiver
                and len(receiver) > 1
                and not target.startswith("numpy")
            ):
                self.flag("monkeypatch", node, f"changes the contents of `{target}` ({func.attr})")
        for keyword in node.keywords:
            if keyword.arg == "mmap_mode" and not (
                isinstance(keyword.value, ast.Constant) and keyword.value.value is None
            ):
                self.flag(
                    "tracker-tampering",
                    node,
                    "loads with mmap_mode: a file mapped into memory, which the tracer does not count",
                )
            if keyword.arg == "allow_pickle" and not (
                isinstance(keyword.value, ast.Constant) and not keyword.value.value
            ):
                self.flag("obfuscation", node, "loads pickled data, which can run any code")
        if _is_namespace_call(node):
            self.check_namespace_use(node)
        self.generic_visit(node)

    def check_open(self, node: ast.Call) -> None:
        mode: ast.AST | None = node.args[1] if len(node.args) > 1 else None
        for keyword in node.keywords:
            if keyword.arg == "mode":
                mode = keyword.value
        if mode is None:
            return
        text = _const_str(mode)
        if text is None or set(text) & set("wax+"):
            self.flag("shell-or-network", node, "opens a file for writing")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.ctx, ast.Load):
            if (
                _is_dunder(node.attr) and node.attr not in _SAFE_DUNDER_ATTRS
            ) or node.attr in _FRAME_ATTRS:
                self.flag("obfuscation", node, f"reaches `{node.attr}`")
            parent = self.parent(node)
            if not (isinstance(parent, ast.Attribute) and parent.value is node):
                parts = self.chain(node)
                self.check_attribute_use(node, parts)
                target = self.resolve(parts)
                if target in _KNOWN_SUBMODULES:
                    self.check_module_value(node, ".".join(parts or []))
        self.generic_visit(node)

    def check_attribute_use(self, node: ast.AST, parts: list[str] | None) -> None:
        """Judge a use of ``a.b.c`` (the whole chain) by the rules of the module it starts in."""
        target = self.resolve(parts)
        if target is None:
            return
        pieces = target.split(".")
        top, rest = pieces[0], pieces[1:]
        attr = rest[0] if rest else None
        if attr is None:
            return
        if top == "tracemalloc" and attr not in _TRACEMALLOC_READ:
            self.flag(
                "tracker-tampering",
                node,
                f"uses tracemalloc.{attr}: only reading the tracer is allowed",
            )
        elif top == "gc" and attr not in _GC_ALLOWED:
            self.flag(
                "trace-function" if attr in _GC_HOOKS else "tracker-tampering",
                node,
                f"uses gc.{attr}",
            )
        elif top == "sys" and attr not in _SYS_ALLOWED:
            if attr in _SYS_TRACE:
                self.flag("trace-function", node, f"uses sys.{attr}")
            elif attr == "exit":
                self.flag("exits-kernel", node, "calls sys.exit")
            elif attr in _SYS_HOOKS:
                self.flag("ipython-hook", node, f"uses sys.{attr}")
            else:
                self.flag("obfuscation", node, f"reaches interpreter internals (sys.{attr})")
        elif top == "os":
            if attr in _OS_EXIT:
                self.flag("exits-kernel", node, f"calls os.{attr}")
            elif attr.startswith(_OS_SHELL_PREFIXES) or attr in _OS_WRITES:
                self.flag("shell-or-network", node, f"calls os.{attr}")
        elif top == "threading" and attr in _THREADING_TRACE:
            self.flag("trace-function", node, f"uses threading.{attr}")
        elif top == "numpy" and pieces[-1] in _UNTRACED_NUMPY:
            self.flag(
                "tracker-tampering",
                node,
                f"uses {target}: a file mapped into memory, which the tracer does not count",
            )
        elif top == "IPython" and not target.startswith(
            ("IPython.display", "IPython.core.display")
        ):
            self.flag("ipython-hook", node, f"reaches IPython internals ({target})")
        elif top == "autograder" and self.strict:
            if attr == "checks" and (len(rest) < 2 or rest[1] in CHECKS_PUBLIC):
                return
            self.flag("tracker-tampering", node, f"uses the grader's internals ({target})")

    # -- IPython -------------------------------------------------------------------------
    def check_get_ipython(self, node: ast.Name) -> None:
        """Only ``get_ipython().run_line_magic/run_cell_magic`` of an allowed magic, as IPython writes it."""
        call = self.parent(node)
        method = (
            self.parent(call)
            if isinstance(call, ast.Call) and call.func is node and not call.args
            else None
        )
        invocation = self.parent(method) if isinstance(method, ast.Attribute) else None
        if not (
            isinstance(invocation, ast.Call)
            and isinstance(method, ast.Attribute)
            and invocation.func is method
        ):
            self.flag("ipython-hook", node, "uses the IPython shell object (get_ipython())")
            return
        args = invocation.args
        if method.attr in {"system", "getoutput"}:
            self.flag("shell-or-network", invocation, "runs a shell command (!)")
            return
        if (
            method.attr not in {"run_line_magic", "run_cell_magic"}
            or not args
            or invocation.keywords
        ):
            self.flag("ipython-hook", invocation, f"calls get_ipython().{method.attr}")
            return
        magic = _const_str(args[0])
        strings = [_const_str(arg) for arg in args[1:]]
        if magic is None or any(text is None for text in strings):
            self.flag("ipython-hook", invocation, "runs a magic with computed arguments")
            return
        if magic in _SHELL_MAGICS:
            self.flag("shell-or-network", invocation, f"runs the %{magic} magic")
            return
        if magic in _TRACE_MAGICS:
            self.flag("trace-function", invocation, f"runs the %{magic} magic")
            return
        if magic not in _ALLOWED_MAGICS:
            self.flag("ipython-hook", invocation, f"runs the %{magic} magic")
            return
        line = strings[0] or ""
        if magic in {"time", "timeit"}:  # no variable expansion: the arguments are code
            for text in strings:
                self.scan_nested(
                    _strip_timeit_options(text or "") if magic == "timeit" else text or ""
                )
            return
        # Other magics expand {expression} and $name in their line with the notebook's values.
        for expression in re.findall(r"\{([^{}]*)\}", line):
            self.scan_nested(expression)
        if magic == "capture" and len(strings) == 2:
            self.scan_nested(strings[1] or "")

    def scan_nested(self, source: str) -> None:
        """Code run by a magic (%time, %timeit, %%capture, {expansions}) runs in the notebook too."""
        if not source.strip():
            return
        inner = scan_code(
            source,
            self.cell,
            strict=self.strict,
            imports=self.imports,
            module_names=self.module_names,
            future_flags=self.future_flags,
        )
        for evidence in inner:
            if evidence not in self.evidence:
                self.evidence.append(evidence)

    def check_namespace_use(self, node: ast.AST) -> None:
        """``globals()`` (or an alias of it) may be read and popped, not written or handed out."""
        parent = self.parent(node)
        if isinstance(parent, ast.Subscript) and parent.value is node:
            return  # reads; writes are judged by check_subscript_store
        if isinstance(parent, ast.Compare):
            return
        if isinstance(parent, (ast.Assign, ast.NamedExpr)) and parent.value is node:
            return  # an alias: tracked
        if isinstance(parent, ast.Attribute) and parent.value is node:
            call = self.parent(parent)
            if parent.attr in _NAMESPACE_READERS:
                return
            if parent.attr in {"update", "setdefault", "__setitem__"} and isinstance(
                call, ast.Call
            ):
                keys: list[str | None]
                if parent.attr == "update":
                    if call.args and not isinstance(call.args[0], ast.Dict):
                        self.flag(
                            "rebinds-protected-name",
                            call,
                            "updates the notebook's namespace from a computed mapping",
                        )
                        return
                    keys = [keyword.arg for keyword in call.keywords]
                    if call.args and isinstance(call.args[0], ast.Dict):
                        keys += [
                            _const_str(key) if key is not None else None
                            for key in call.args[0].keys
                        ]
                else:
                    keys = [_const_str(arg) for arg in call.args[:1]]
                for key in keys:
                    if key is None:
                        self.flag(
                            "rebinds-protected-name",
                            call,
                            "writes the notebook's namespace under a computed name",
                        )
                    else:
                        self.check_binding(call, key)
                return
            self.flag(
                "rebinds-protected-name",
                parent,
                f"calls `{parent.attr}` on the notebook's namespace",
            )
            return
        if isinstance(parent, ast.Call) and node in parent.args:
            func = parent.func
            if isinstance(func, ast.Name) and func.id in _NAMESPACE_SAFE_CONSUMERS:
                return
        if (
            isinstance(parent, (ast.comprehension, ast.For))
            and getattr(parent, "iter", None) is node
        ):
            return
        self.flag("obfuscation", node, "passes the notebook's namespace (globals()) around")


def _strip_timeit_options(text: str) -> str:
    return re.sub(r"^(\s*-(?:[nrp]\s*\S+|[tcqo])\b)*\s*", "", text)


def collect_imports(source: str) -> tuple[dict[str, str], set[str]]:
    """What a cell's imports bind: name -> dotted target, and the names bound to whole modules."""
    try:
        tree = _parse(_transform(source), _BARRY_FLAG)
    except Exception:
        tree = None
    targets: dict[str, str] = {}
    modules: set[str] = set()
    for node in ast.walk(tree) if tree is not None else ():
        if isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.asname or alias.name.split(".")[0]
                targets[name] = alias.name if alias.asname else name
                modules.add(name)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                if alias.name != "*":
                    targets[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return targets, modules


def scan_code(
    source: str,
    cell: str,
    *,
    strict: bool = True,
    imports: Mapping[str, str] | None = None,
    module_names: Collection[str] = (),
    future_flags: int = 0,
) -> list[Evidence]:
    """The static read of one student cell: what it does that could change the grading.

    ``source`` is the cell as written (IPython syntax: magics, ``!``, ``?``). ``imports``
    maps names that imports elsewhere in the notebook bind to what they refer to, and
    ``module_names`` says which of them are whole modules (see :func:`collect_imports`):
    anything imported is protected. ``strict`` (a notebook with graded cells) also forbids
    the grader's internals (``checks.track``, ``autograder.checks.memory``...), which the lesson
    uses openly. A cell that does not parse is not evidence: it will just fail.
    """
    try:
        python = _transform(source)
    except Exception:  # IPython cannot transform it: the kernel will not run it either
        return []
    tree = _parse(python, future_flags)
    if tree is None:
        return []
    return _Scanner(python, cell, imports or {}, module_names, strict, future_flags).run(tree)


def restored_ids(instructor_notebook: nbformat.NotebookNode) -> set[str]:
    """The grade_ids nbgrader puts back from the gradebook: the instructor's locked cells."""
    ids = set()
    for cell in instructor_notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade_id") and (
            meta.get("locked") or (meta.get("grade") and not meta.get("solution"))
        ):
            ids.add(meta["grade_id"])
    return ids


def instructor_sources(instructor_notebook: nbformat.NotebookNode) -> dict[str, str]:
    """grade_id -> source of every cell that has one (hidden tests included)."""
    return {
        cell.metadata["nbgrader"]["grade_id"]: cell.source
        for cell in instructor_notebook.cells
        if cell.metadata.get("nbgrader", {}).get("grade_id")
    }


def _cell_name(cell: nbformat.NotebookNode, index: int) -> str:
    return cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {index + 1}"


def _student_cells(
    nb: nbformat.NotebookNode, restored: Collection[str] | None
) -> list[tuple[int, nbformat.NotebookNode]]:
    """Code cells whose source will run as the student wrote it.

    A cell is the instructor's only if nbgrader will restore it: it is locked (or a test
    cell), carries a grade_id, is the last cell with that grade_id (nbgrader's
    DeduplicateIds strips the metadata of the earlier ones), and, when ``restored`` is
    given, that grade_id is one the gradebook has (nbgrader keeps a cell with an unknown
    grade_id as the student wrote it).
    """
    last_index: dict[str, int] = {}
    for index, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade_id") and (
            meta.get("grade") or meta.get("solution") or meta.get("locked")
        ):
            last_index[meta["grade_id"]] = index
    cells = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        grade_id = meta.get("grade_id")
        instructors = (
            bool(grade_id)
            and bool(meta.get("locked") or (meta.get("grade") and not meta.get("solution")))
            and last_index.get(grade_id) == index
            and (restored is None or grade_id in restored)
        )
        if restored is not None and grade_id in restored and last_index.get(grade_id) == index:
            instructors = True  # nbgrader restores it whatever its submitted metadata says
        if not instructors:
            cells.append((index, cell))
    return cells


def scan_notebook(
    nb: nbformat.NotebookNode, restored: Collection[str] | None = None
) -> list[Evidence]:
    """:func:`scan_code` on every cell whose code will run as the student wrote it.

    That is every code cell except those nbgrader restores from the gradebook: pass
    ``restored`` (:func:`restored_ids` of the instructor's notebook) when grading. Without
    it a cell is trusted on its submitted metadata alone (locked or a test cell, with a
    grade_id), and a student could mark a cell of their own as locked. Names imported
    anywhere in the notebook are protected in every cell; a notebook without graded cells
    (the lesson) may use the grader's internals.
    """
    strict = any(cell.metadata.get("nbgrader", {}).get("grade") for cell in nb.cells)
    imports: dict[str, str] = {}
    modules: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type == "code":
            targets, names = collect_imports(cell.source)
            imports.update(targets)
            modules |= names
    student = {index for index, _ in _student_cells(nb, restored)}
    evidence: list[Evidence] = []
    future_flags = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if index in student:
            evidence += scan_code(
                cell.source,
                _cell_name(cell, index),
                strict=strict,
                imports=imports,
                module_names=modules,
                future_flags=future_flags,
            )
        if "barry_as_FLUFL" in cell.source:
            future_flags |= _BARRY_FLAG  # IPython's compiler keeps __future__ flags for later cells
    return evidence


# --------------------------------------------------------------------------------------
# The cell inspection
# --------------------------------------------------------------------------------------

_WATCHED_METADATA = ("grade", "locked", "solution", "points", "task")


def _normalized(source: str) -> str:
    """The source without whitespace differences (trailing spaces, blank lines, runs of blanks)."""
    lines = (" ".join(line.split()) for line in source.splitlines())
    return "\n".join(line for line in lines if line)


def _is_locked(meta: Mapping[str, Any]) -> bool:
    return bool(meta.get("locked") or (meta.get("grade") and not meta.get("solution")))


def inspect_cells(
    submitted: nbformat.NotebookNode,
    released: nbformat.NotebookNode,
    instructor_sources: Mapping[str, str],
) -> list[Evidence]:
    """Compare the submitted notebook with the release, before nbgrader sanitizes it.

    nbgrader quietly puts locked cells back, clears the metadata of duplicated ones and
    keeps cells with unknown grade_ids as they are; this says, for the instructor, what the
    student did to them:

    * a locked or test cell whose source matches neither the release nor the instructor's
      version (``instructor_sources``, grade_id -> source): ``edited-locked-cell``;
    * a grade_id of the release missing: ``deleted-graded-cell`` (any cell with a grade_id,
      graded or not: deleting the cell that displays an array is a way around an exercise);
    * a grade_id twice: ``duplicated-cell``;
    * the release's cells in another order: ``moved-cell``;
    * nbgrader metadata (grade, locked, solution, points, task) or the cell type of a known
      cell changed, or a grade_id the release does not have: ``changed-metadata``;
    * a kernelspec other than the release's (python3): ``changed-kernelspec``.

    Whitespace-only differences are not evidence.
    """
    evidence: list[Evidence] = []
    released_cells: dict[str, nbformat.NotebookNode] = {}
    order: list[str] = []
    for cell in released.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id:
            released_cells[grade_id] = cell
            order.append(grade_id)

    seen: dict[str, int] = {}
    submitted_order: list[str] = []
    for index, cell in enumerate(submitted.cells):
        meta = cell.metadata.get("nbgrader", {})
        grade_id = meta.get("grade_id")
        if not grade_id:
            continue
        seen[grade_id] = seen.get(grade_id, 0) + 1
        if seen[grade_id] == 2:
            evidence.append(
                Evidence(
                    "duplicated-cell", grade_id, f"the grade_id {grade_id!r} appears more than once"
                )
            )
        if seen[grade_id] > 1:
            continue
        original = released_cells.get(grade_id)
        if original is None:
            evidence.append(
                Evidence(
                    "changed-metadata",
                    grade_id,
                    f"cell {index + 1} has a grade_id the release does not have",
                )
            )
            continue
        submitted_order.append(grade_id)
        original_meta = original.metadata.get("nbgrader", {})
        changed = [
            f"{key}: {original_meta.get(key)!r} -> {meta.get(key)!r}"
            for key in _WATCHED_METADATA
            if key in original_meta or key in meta
            if _metadata_value(key, meta) != _metadata_value(key, original_meta)
        ]
        if cell.cell_type != original.cell_type:
            changed.append(f"cell type: {original.cell_type} -> {cell.cell_type}")
        if changed:
            evidence.append(
                Evidence(
                    "changed-metadata",
                    grade_id,
                    "nbgrader metadata changed (" + "; ".join(changed) + ")",
                )
            )
        if _is_locked(original_meta):
            source = _normalized(cell.source)
            known = {
                _normalized(original.source),
                _normalized(instructor_sources.get(grade_id, original.source)),
            }
            if source not in known:
                first = next(
                    (
                        line
                        for line in cell.source.splitlines()
                        if _normalized(line) and _normalized(line) not in known
                    ),
                    cell.source.strip().splitlines()[0] if cell.source.strip() else "(empty)",
                )
                evidence.append(
                    Evidence(
                        "edited-locked-cell",
                        grade_id,
                        f"the locked cell was edited: `{first.strip()[:160]}`",
                    )
                )

    for grade_id in order:
        if grade_id not in seen:
            what = (
                "test cell"
                if released_cells[grade_id].metadata["nbgrader"].get("grade")
                else "cell"
            )
            evidence.append(
                Evidence(
                    "deleted-graded-cell",
                    grade_id,
                    f"the {what} {grade_id!r} of the release is missing",
                )
            )

    position = {grade_id: index for index, grade_id in enumerate(order)}
    for grade_id in _moved([position[grade_id] for grade_id in submitted_order], submitted_order):
        evidence.append(
            Evidence("moved-cell", grade_id, f"{grade_id!r} is not where the release has it")
        )

    kernel = submitted.metadata.get("kernelspec", {}).get("name")
    expected_kernel = released.metadata.get("kernelspec", {}).get("name", "python3")
    if kernel != expected_kernel:
        evidence.append(
            Evidence(
                "changed-kernelspec",
                "notebook",
                f"the notebook asks for the kernel {kernel!r}, not {expected_kernel!r}",
            )
        )
    return evidence


def _moved(positions: list[int], names: list[str]) -> list[str]:
    """The cells to move back to restore the release's order: those outside the longest run
    of cells that are still in order."""
    best: list[list[int]] = []  # best[i]: the longest increasing run ending at i (indices)
    for i, here in enumerate(positions):
        run = max((best[j] for j in range(i) if positions[j] < here), key=len, default=[])
        best.append([*run, i])
    keep = set(max(best, key=len, default=[]))
    return [name for i, name in enumerate(names) if i not in keep]


def _metadata_value(key: str, meta: Mapping[str, Any]) -> Any:
    value = meta.get(key)
    if key == "points":
        return float(value) if value is not None else None
    return bool(value)


# --------------------------------------------------------------------------------------
# The probe
# --------------------------------------------------------------------------------------
#
# The same functions run in the grading process (to compute the fingerprint) and in the
# kernel (to compare the kernel with it): they describe the same objects the same way in
# both, as long as both run the same installed files. The kernel imports this module at
# the first probe, right after it starts (before any student code, and before tracemalloc
# runs, so the import costs nothing later), and keeps the state it found there, once that
# state matches the grading process's fingerprint, whose digest every probe carries.

# Modules whose every attribute is watched, and single attributes ("Class.method") of others.
_FULL_MODULES = (
    "autograder.checks",
    "autograder.checks.memory",
    "autograder.checks.references",
    "tracemalloc",
    "_tracemalloc",
    "gc",
    "IPython.core.inputtransformer2",
)


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_SHELL_METHODS = _names(
    "run_cell run_cell_async _run_cell run_code run_ast_nodes showtraceback _showtraceback "
    "showsyntaxerror transform_cell transform_ast should_run_async excepthook _get_exc_info "
    "run_line_magic run_cell_magic var_expand del_var set_custom_exc user_expressions "
    "get_ipython _tee init_io"
)
_PARTIAL: dict[str, tuple[str, ...]] = {
    "numpy": _names(
        "ones zeros empty full array asarray ascontiguousarray copy concatenate shares_memory "
        "may_share_memory allclose array_equal isclose dot ndarray arange linspace subtract "
        "divide multiply add sqrt float64 uint8 mean std sum min max frombuffer ones_like "
        "zeros_like empty_like dtype generic floating integer random lib"
    ),
    "numpy.random": _names("default_rng Generator"),
    "numpy.lib": _names("tracemalloc_domain"),
    "builtins": _names(
        "len sum isinstance issubclass type id getattr hasattr setattr delattr print float "
        "int str bool range globals locals vars AssertionError Exception BaseException object "
        "super exec eval compile __import__ repr dict list tuple set frozenset min max abs "
        "round any all callable iter next sorted enumerate zip map filter hash format "
        "memoryview bytes bytearray"
    ),
    "weakref": _names("ref proxy finalize WeakMethod"),
    "_weakref": _names("ref proxy getweakrefcount"),
    "psutil": _names("Process.memory_info Process.__init__ Process._init Process.oneshot"),
    "sys": _names(
        "gettrace getprofile settrace setprofile _current_frames _getframe getsizeof exc_info "
        "audit addaudithook"
    ),
    "threading": _names(
        "gettrace getprofile settrace setprofile get_ident enumerate Thread Thread.run "
        "Thread.start Timer"
    ),
    "hashlib": _names("sha1"),
    "json": _names("dumps loads"),
    "ipykernel.zmqshell": (
        "ZMQInteractiveShell",
        *(f"ZMQInteractiveShell.{name}" for name in _SHELL_METHODS),
        "ZMQDisplayPublisher.publish",
    ),
    "ipykernel.ipkernel": tuple(
        f"IPythonKernel.{name}"
        for name in _names(
            "do_execute execute_request dispatch_shell _publish_execute_input send_response "
            "_publish_status"
        )
    ),
    "ipykernel.displayhook": tuple(
        f"ZMQShellDisplayHook.{name}"
        for name in _names(
            "__call__ start_displayhook write_output_prompt compute_format_data "
            "write_format_data update_user_ns fill_exec_result log_output finish_displayhook "
            "check_for_underscore quiet"
        )
    ),
    "ipykernel.iostream": _names(
        "OutStream.write OutStream.flush OutStream._flush OutStream.writelines "
        "OutStream._schedule_flush IOPubThread.send_multipart IOPubThread.schedule "
        "BackgroundSocket.send_multipart BackgroundSocket.send"
    ),
    "ipykernel.compiler": tuple(
        f"XCachingCompiler.{name}"
        for name in _names("__call__ ast_parse cache get_code_name format_code_name compiler_flags")
    ),
    "IPython.core.events": _names("EventManager.trigger EventManager.register"),
    "IPython.core.prefilter": _names(
        "PrefilterManager.prefilter_lines PrefilterManager.prefilter_line"
    ),
    "jupyter_client.session": _names("Session.send Session.serialize Session.sign Session.msg"),
    "contextlib": _names(
        "contextmanager _GeneratorContextManager.__enter__ _GeneratorContextManager.__exit__ "
        "_GeneratorContextManager.__init__"
    ),
    "autograder.integrity": _names(
        "_kernel_probe _check_kernel snapshot _describe _lookup _code_digest _feed_code "
        "_feed_const _registered _overrides _trusted_callable _trusted_type _digest _under "
        "_roots _restarted_since_tracked _watched _watched_now _flatten _differences _is_same "
        "_kernel_defaults PROTECTED_BUILTINS"
    ),
}

_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class made by a class statement, not by C code
_FUNCTION_KINDS = (types.FunctionType, types.MethodType, staticmethod, classmethod, property)
_MISSING = object()
_NOT_LOADED = object()
_code_digests: dict[int, tuple[types.CodeType, str]] = {}


def _feed_const(value: Any, h: Any) -> None:
    kind = type(value)
    if kind is types.CodeType:
        _feed_code(value, h)
    elif kind is tuple or kind is list:
        h.update(b"(")
        for item in value:
            _feed_const(item, h)
        h.update(b")")
    elif kind is frozenset or kind is set:  # set order varies with the hash seed
        h.update(("{" + ",".join(sorted(repr(item) for item in value)) + "}").encode())
    else:
        h.update(repr(value).encode("utf-8", "backslashreplace"))
    h.update(b";")


def _feed_code(code: types.CodeType, h: Any) -> None:
    h.update(code.co_code)
    names = (
        code.co_name,
        code.co_names,
        code.co_varnames,
        code.co_freevars,
        code.co_cellvars,
        code.co_argcount,
        code.co_posonlyargcount,
        code.co_kwonlyargcount,
        code.co_flags,
    )
    h.update(repr(names).encode())
    for const in code.co_consts:
        _feed_const(const, h)


def _code_digest(code: types.CodeType) -> str:
    """A digest of what a code object does (not where it was compiled). Cached: code is immutable."""
    cached = _code_digests.get(id(code))
    if cached is not None and cached[0] is code:
        return cached[1]
    h = hashlib.sha1()
    _feed_code(code, h)
    digest = h.hexdigest()[:16]
    _code_digests[id(code)] = (code, digest)
    return digest


def _registered(globals_dict: Any, module_name: Any) -> bool:
    """Whether a function's globals are the namespace of the module it says it comes from."""
    module = sys.modules.get(module_name) if isinstance(module_name, str) else None
    return module is not None and getattr(module, "__dict__", None) is globals_dict


def _describe(value: Any, depth: int = 0) -> str:
    """A text that changes when ``value`` is replaced or its code changes, equal in every process."""
    kind = type(value)
    if value is None or kind in (bool, int, float, complex):
        return repr(value)
    if kind is str or kind is bytes:
        if len(value) <= 80:
            return repr(value)
        data = value if kind is bytes else value.encode("utf-8", "backslashreplace")
        return f"{kind.__name__}#{hashlib.sha1(data).hexdigest()[:12]}"
    if kind is types.FunctionType:
        module = value.__module__
        text = (
            f"function {module}.{value.__qualname__} {_code_digest(value.__code__)}"
            f" globals={'module' if _registered(value.__globals__, module) else 'other'}"
        )
        if depth < 2:
            if value.__defaults__:
                text += " defaults=" + _describe(value.__defaults__, depth + 1)
            if value.__kwdefaults__:
                text += " kwdefaults=" + ",".join(
                    f"{key}={_describe(item, depth + 1)}"
                    for key, item in sorted(value.__kwdefaults__.items())
                )
            if value.__closure__:
                cells = []
                for cell in value.__closure__:
                    try:
                        cells.append(_describe(cell.cell_contents, depth + 1))
                    except ValueError:
                        cells.append("empty")
                text += " closure=[" + ",".join(cells) + "]"
            wrapped = value.__dict__.get("__wrapped__")
            if wrapped is not None:
                text += " wraps=" + _describe(wrapped, depth + 1)
        return text
    if kind is types.BuiltinFunctionType:
        owner = value.__self__
        owner_name = (
            owner.__name__ if isinstance(owner, types.ModuleType) else type(owner).__qualname__
        )
        return f"builtin {getattr(value, '__module__', None)}.{value.__qualname__} of {owner_name}"
    if kind is types.MethodType:
        return (
            f"method of {type(value.__self__).__qualname__}: {_describe(value.__func__, depth + 1)}"
        )
    if kind is types.ModuleType:
        registered = "registered" if sys.modules.get(value.__name__) is value else "unregistered"
        return f"module {value.__name__} {registered}"
    if kind is staticmethod or kind is classmethod:
        return f"{kind.__name__}({_describe(value.__func__, depth + 1)})"
    if kind is property:
        return (
            "property("
            + ",".join(_describe(f, depth + 1) for f in (value.fget, value.fset, value.fdel))
            + ")"
        )
    if isinstance(value, type):
        name = f"{value.__module__}.{value.__qualname__}"
        if not value.__flags__ & _HEAPTYPE:
            return f"type {name} static"
        if depth >= 2:
            return f"class {name}"
        members = [
            f"{key}={_describe(member, depth + 1)}"
            for key, member in sorted(vars(value).items())
            if isinstance(member, _FUNCTION_KINDS)
        ]
        bases = ",".join(f"{base.__module__}.{base.__qualname__}" for base in value.__bases__)
        return f"class {name}({bases}) metaclass={type(value).__qualname__} " + "; ".join(members)
    if kind is tuple or kind is list:
        if depth >= 3:
            return f"{kind.__name__}[{len(value)}]"
        return (
            f"{kind.__name__}[" + ", ".join(_describe(item, depth + 1) for item in value[:20]) + "]"
        )
    if kind is set or kind is frozenset:
        return (
            f"{kind.__name__}{{"
            + ", ".join(sorted(_describe(item, depth + 1) for item in list(value)[:50]))
            + "}"
        )
    if kind is dict:
        return "dict"
    text = f"object {kind.__module__}.{kind.__qualname__}"
    kind_name = kind.__name__
    if kind_name == "ufunc":
        text += f" {value.__name__}"
    elif kind_name == "_ArrayFunctionDispatcher":
        text += f" {value.__qualname__} impl={_describe(getattr(value, '_implementation', None), depth + 1)}"
    elif kind_name == "cython_function_or_method":
        text += f" {value.__module__}.{value.__qualname__}"
    elif kind_name == "DomainFilter":
        text += f" inclusive={value.inclusive} domain={value.domain}"
    elif kind_name == "Pattern":
        text += f" {value.pattern!r}"
    instance_dict = getattr(value, "__dict__", None)
    if type(instance_dict) is dict:
        replaced = sorted(
            key
            for key, item in instance_dict.items()
            if callable(item) and callable(getattr(kind, key, None))
        )
        if replaced:
            text += " overrides=" + ",".join(replaced)
    return text


def _lookup(module_name: str, path: str) -> Any:
    """The object at ``module:path``; _NOT_LOADED when the module (or a lazy submodule on the
    way) is not imported in this process, _MISSING when the attribute is gone."""
    value = sys.modules.get(module_name)
    if value is None:
        return _NOT_LOADED
    for part in path.split("."):
        if type(value) is types.ModuleType:
            namespace = vars(value)
            if part not in namespace:
                submodule = f"{value.__name__}.{part}"
                return _NOT_LOADED if submodule not in sys.modules else _MISSING
            value = namespace[part]
        else:
            try:
                value = getattr(value, part)
            except Exception:
                return _MISSING
    return value


def snapshot(
    full_modules: Iterable[str] = _FULL_MODULES, partial: Mapping[str, Iterable[str]] = _PARTIAL
) -> dict[str, str]:
    """{"module:path": description} of every watched object this process has loaded."""
    found: dict[str, str] = {}
    builtins = sys.modules["builtins"]
    for module_name in full_modules:
        module = sys.modules.get(module_name)
        if module is None:
            continue
        namespace = vars(module)
        found[f"{module_name}:*names"] = hashlib.sha1(
            ",".join(sorted(namespace)).encode()
        ).hexdigest()[:16]
        found[f"{module_name}:*builtins"] = (
            "builtins"
            if namespace.get("__builtins__") in (vars(builtins), builtins)
            else repr(type(namespace.get("__builtins__")))
        )
        for key, value in list(namespace.items()):
            if not _is_dunder(key):
                found[f"{module_name}:{key}"] = _describe(value)
    for module_name, paths in partial.items():
        for path in paths:
            value = _lookup(module_name, path)
            if value is not _NOT_LOADED:
                found[f"{module_name}:{path}"] = (
                    "missing" if value is _MISSING else _describe(value)
                )
    return found


def _digest(found: Mapping[str, str]) -> str:
    return hashlib.sha1(json.dumps(found, sort_keys=True).encode()).hexdigest()


@functools.cache
def _roots() -> tuple[str, ...]:
    """Where installed code lives: the standard library, site-packages, this package."""
    import os
    import sysconfig

    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    roots |= {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))),  # this package, not the course
    }
    found = {os.path.join(root, "") for root in roots} | {
        os.path.join(os.path.realpath(root), "") for root in roots
    }
    return (*sorted(found), "<frozen ")


def _under(path: Any, roots: tuple[str, ...]) -> bool:
    return isinstance(path, str) and path.startswith(roots)


def _trusted_type(kind: type, roots: tuple[str, ...]) -> bool:
    """A class defined by installed code, not by the notebook."""
    module = sys.modules.get(getattr(kind, "__module__", None) or "")
    if module is None or module.__name__ == "__main__":
        return False
    path = getattr(module, "__file__", None)
    return path is None or _under(path, roots)


def _trusted_callable(item: Any, prefixes: tuple[str, ...], roots: tuple[str, ...]) -> bool:
    """Installed code from one of the ``prefixes`` packages, not the notebook's."""
    func = getattr(item, "__func__", item)
    if type(func) is types.FunctionType:
        module = func.__module__ or ""
        return (
            module.startswith(prefixes)
            and _registered(func.__globals__, module)
            and _under(func.__code__.co_filename, roots)
        )
    if type(func) is types.BuiltinFunctionType:
        return True  # C code: a notebook cannot make any
    return type(func).__module__.startswith(prefixes) and _trusted_type(type(func), roots)


def _overrides(obj: Any, allowed: Mapping[str, Any] | None = None) -> list[str]:
    """Methods of ``obj``'s class that ``obj`` replaces with something of its own."""
    found = []
    kind = type(obj)
    for key, item in list(vars(obj).items()):
        method = getattr(kind, key, None)
        if type(method) is not types.FunctionType:
            continue
        if type(item) is types.MethodType and item.__self__ is obj and item.__func__ is method:
            continue
        if allowed and key in allowed and allowed[key](obj, item):
            continue
        found.append(key)
    return found


def _restarted_since_tracked(checks: Any, tracemalloc: Any) -> str | None:
    """The label of an array tracked before tracemalloc was last restarted, if any.

    ``tracemalloc.stop()`` erases every trace, so the objects ``checks.track`` allocated
    while tracing (the integers of its record) lose their traceback. Objects the garbage
    collector tracks never report one on Python 3.11, and small integers are shared, so
    only large integers are asked.
    """
    for label, entry in list(vars(checks)["_tracked"].items()):
        numbers = [
            value
            for value in (
                getattr(entry, "nbytes", None),
                getattr(entry, "numpy_bytes_when_tracked", None),
            )
            if type(value) is int and not -5 <= value <= 256
        ]
        if numbers and all(tracemalloc.get_object_traceback(value) is None for value in numbers):
            return label
    return None


@functools.cache
def _kernel_defaults() -> dict[str, Any]:
    """Computed once, at the first probe: IPython's default input transformers, and the code
    of the closure IPython uses to copy a cell's output into its history."""
    from IPython.core.inputtransformer2 import TransformerManager
    from IPython.core.interactiveshell import InteractiveShell

    default = TransformerManager()
    tee = vars(InteractiveShell)["_tee"]
    return {
        "transformers": {
            name: list(getattr(default, name))
            for name in ("cleanup_transforms", "line_transforms", "token_transformers")
        },
        "tee_codes": tuple(
            const
            for const in getattr(tee, "__wrapped__", tee).__code__.co_consts
            if type(const) is types.CodeType
        ),
    }


def _check_kernel(ns: dict, add: Any) -> None:
    """Everything but the watched code: the notebook's names, tracing, hooks, threads."""
    modules = sys.modules
    builtins = modules["builtins"]
    roots = _roots()
    interactiveshell = modules["IPython.core.interactiveshell"]
    shell = getattr(interactiveshell.InteractiveShell, "_instance", None)

    # The notebook's names: the modules the tests use, and no builtin hidden.
    for name, module_name in (("checks", "autograder.checks"), ("np", "numpy")):
        if name in ns and ns[name] is not modules.get(module_name):
            add(f"`{name}` in the notebook is not the module {module_name}")
    for name in PROTECTED_BUILTINS:
        if name not in ns:
            continue
        value = ns[name]
        if (
            name == "get_ipython"
            and type(value) is types.MethodType
            and value.__self__ is shell
            and (value.__func__ is interactiveshell.InteractiveShell.get_ipython)
        ):
            continue  # IPython puts it there
        if callable(
            value
        ):  # a string named `str` breaks a test; a function named `len` can pass one
            add(f"the notebook defines `{name}`, hiding the builtin for every later cell")
    if ns.get("__builtins__") is not builtins and ns.get("__builtins__") is not vars(builtins):
        add("the notebook's __builtins__ was replaced")

    # tracemalloc: on once the checks are loaded, and never restarted since a track().
    checks = modules.get("autograder.checks")
    tracemalloc = modules.get("tracemalloc")
    tracked = vars(checks).get("_tracked") if checks is not None else None
    if tracemalloc is not None and (ns.get("checks") is not None or tracked):  # the set-up cell ran
        if not tracemalloc.is_tracing():
            add("tracemalloc is not tracing: NumPy's memory is not being counted")
        elif type(tracked) is not dict:
            add("checks._tracked was replaced")
        else:
            label = _restarted_since_tracked(checks, tracemalloc)
            if label is not None:
                add(
                    f"tracemalloc was stopped and restarted after {label!r} was tracked (its traces were erased)"
                )

    # Trace, profile and monitoring hooks.
    if sys.gettrace() is not None:
        add(f"a trace function is set: {_describe(sys.gettrace())[:100]}")
    if sys.getprofile() is not None:
        add(f"a profile function is set: {_describe(sys.getprofile())[:100]}")
    threading = modules.get("threading")
    if threading is not None:
        for hook in ("_trace_hook", "_profile_hook"):
            if getattr(threading, hook, None) is not None:
                add(f"threading.{hook} is set: a trace or profile function for new threads")
    monitoring = getattr(sys, "monitoring", None)
    if monitoring is not None:
        for tool in range(6):
            if monitoring.get_tool(tool) is not None:
                add(f"sys.monitoring tool {tool} is in use")

    # The notebook's code running in another thread.
    if threading is not None:
        current = threading.get_ident()
        for ident, frame in sys._current_frames().items():
            while frame is not None and ident != current:
                globals_ = frame.f_globals
                name = globals_.get("__name__")
                if (
                    globals_ is ns
                    or name == "__main__"
                    or (
                        not _registered(globals_, name)
                        and not _under(frame.f_code.co_filename, roots)
                    )
                ):
                    add(f"a background thread runs code from the notebook ({frame.f_code.co_name})")
                    break
                frame = frame.f_back
            frame = None

    # Threads started since the kernel started, to run something of the notebook's: a
    # Timer, a Thread subclass of its own, or a target that is not the kernel's code (a
    # builtin such as setattr included: it can patch while the test cell runs).
    if threading is not None and _baseline_threads is not None:
        for thread in threading.enumerate():
            if thread.ident in _baseline_threads:
                continue
            target = getattr(thread, "_target", None)
            untrusted = (
                isinstance(thread, threading.Timer)
                or not _trusted_type(type(thread), roots)
                or (
                    target is not None
                    and (
                        type(getattr(target, "__func__", target)) is types.BuiltinFunctionType
                        or not _trusted_callable(target, _KERNEL_PACKAGES, roots)
                    )
                )
            )
            if untrusted:
                add(
                    f"a thread was started after the kernel: {thread.name} ({_describe(target)[:80]})"
                )

    # Callbacks and tasks waiting on the kernel's event loop (call_later, create_task): they
    # run between cells, after this probe.
    asyncio = modules.get("asyncio")
    if asyncio is not None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            waiting = [*getattr(loop, "_scheduled", ()), *getattr(loop, "_ready", ())]
            for handle in waiting:
                if handle.cancelled():
                    continue
                callback = getattr(handle, "_callback", None)
                while type(callback).__name__ == "partial":
                    callback = callback.func
                if type(
                    getattr(callback, "__func__", callback)
                ) is types.BuiltinFunctionType or not (
                    _trusted_callable(callback, _KERNEL_PACKAGES, roots)
                ):
                    add(
                        f"a callback from the notebook waits on the event loop: {_describe(callback)[:80]}"
                    )
            for task in asyncio.all_tasks(loop):
                code = getattr(task.get_coro(), "cr_code", None)
                if code is not None and not _under(code.co_filename, roots):
                    add(f"a task from the notebook waits on the event loop: {code.co_name}")

    # Import hooks.
    for finder in (*sys.meta_path, *sys.path_hooks):
        if type(finder) is types.FunctionType:
            trusted = _trusted_callable(finder, ("",), roots)
        else:
            trusted = _trusted_type(finder if isinstance(finder, type) else type(finder), roots)
        if not trusted:
            add(f"an import hook from the notebook: {_describe(finder)[:100]}")

    # IPython and the kernel.
    if shell is None:
        add("no IPython shell")
        return
    tee_codes = _kernel_defaults()["tee_codes"]

    def teed(stream: Any, item: Any) -> bool:  # IPython's own capture of the cell's output
        if type(item) is not types.FunctionType or item.__code__ not in tee_codes:
            return False
        closure = item.__closure__ or ()
        names = item.__code__.co_freevars
        write = (
            closure[names.index("original_write")].cell_contents
            if "original_write" in names
            else None
        )
        return (
            type(write) is types.MethodType
            and write.__self__ is stream
            and write.__func__ is type(stream).write
        )

    expected_types = (
        (shell, "ipykernel.zmqshell", "ZMQInteractiveShell"),
        (shell.kernel, "ipykernel.ipkernel", "IPythonKernel"),
        (shell.displayhook, "ipykernel.displayhook", "ZMQShellDisplayHook"),
        (shell.display_pub, "ipykernel.zmqshell", "ZMQDisplayPublisher"),
        (shell.compile, "ipykernel.compiler", "XCachingCompiler"),
        (shell.input_transformer_manager, "IPython.core.inputtransformer2", "TransformerManager"),
        (shell.events, "IPython.core.events", "EventManager"),
        (sys.stdout, "ipykernel.iostream", "OutStream"),
        (sys.stderr, "ipykernel.iostream", "OutStream"),
        (shell.kernel.session, "jupyter_client.session", "Session"),
        (shell.prefilter_manager, "IPython.core.prefilter", "PrefilterManager"),
    )
    for obj, module_name, class_name in expected_types:
        module = modules.get(module_name)
        if module is None or type(obj) is not vars(module).get(class_name):
            add(
                f"{module_name}.{class_name} was replaced by {type(obj).__module__}.{type(obj).__qualname__}"
            )
            continue
        replaced = _overrides(obj, {"write": teed})
        if replaced:
            add(f"methods of the {class_name} were replaced on the instance: {', '.join(replaced)}")
    if shell.user_ns is not ns:
        add("the shell's namespace is not the notebook's")
    if sys.displayhook is not shell.displayhook:
        add(f"sys.displayhook was replaced: {_describe(sys.displayhook)[:80]}")
    if sys.excepthook != shell.excepthook:
        add(f"sys.excepthook was replaced: {_describe(sys.excepthook)[:80]}")
    if shell.input_transformers_post:
        add(
            f"input transformers were added: {[_describe(t)[:60] for t in shell.input_transformers_post]}"
        )
    manager = shell.input_transformer_manager
    for name, default in _kernel_defaults()["transformers"].items():
        current = getattr(manager, name)
        if len(current) != len(default) or not all(map(_is_same, current, default)):
            add(
                f"IPython's input transformers ({name}) were changed: {[_describe(t)[:60] for t in current]}"
            )
    if shell.ast_transformers:
        add(f"AST transformers were added: {[_describe(t)[:60] for t in shell.ast_transformers]}")
    if shell.custom_exceptions:
        add(f"a custom exception handler was set for {shell.custom_exceptions!r}")
    prefilter = shell.prefilter_manager
    for item in [*prefilter.transformers, *prefilter.checkers]:
        if not type(item).__module__.startswith("IPython.") or not _trusted_type(type(item), roots):
            add(f"an IPython prefilter from the notebook: {_describe(item)[:80]}")
    prefixes = ("IPython.", "ipykernel.", "matplotlib_inline.", "matplotlib.")
    for event, callbacks in list(shell.events.callbacks.items()):
        for callback in callbacks:
            if not _trusted_callable(callback, prefixes, roots):
                add(f"an IPython {event!r} callback from the notebook: {_describe(callback)[:80]}")


def _flatten(value: Any, out: list[Any], depth: int = 0) -> None:
    """Append the objects whose identity stands for ``value`` and its code to ``out``.

    A later probe flattens the watched objects again and compares the two lists object by
    object (``is``). Building and comparing them allocates next to nothing, which matters:
    with tracemalloc on, every allocation in the kernel costs a traceback.
    """
    append = out.append
    kind = type(value)
    append(value)
    if kind is types.FunctionType:
        append(value.__code__)
        append(value.__defaults__)
        append(value.__globals__)
        kwdefaults = value.__kwdefaults__
        if kwdefaults:
            for key, item in kwdefaults.items():
                append(key)
                append(item)
        closure = value.__closure__
        if closure and depth < 2:
            for cell in closure:
                try:
                    contents = cell.cell_contents
                except ValueError:
                    contents = None
                if isinstance(contents, type):
                    append(contents)
                else:
                    _flatten(contents, out, depth + 1)
        wrapped = value.__dict__.get("__wrapped__")
        if wrapped is not None and depth < 2:
            _flatten(wrapped, out, depth + 1)
    elif kind is types.MethodType:
        out[-1] = kind
        append(type(value.__self__))
        _flatten(value.__func__, out, depth + 1)
    elif kind is staticmethod or kind is classmethod:
        _flatten(value.__func__, out, depth + 1)
    elif kind is property:
        _flatten(value.fget, out, depth + 1)
        _flatten(value.fset, out, depth + 1)
        _flatten(value.fdel, out, depth + 1)
    elif isinstance(value, type):
        if value.__flags__ & _HEAPTYPE and depth < 2:
            append(value.__bases__)
            for key, member in vars(value).items():
                if isinstance(member, _FUNCTION_KINDS):
                    append(key)
                    _flatten(member, out, depth + 1)
    elif kind is tuple or kind is list:
        append(len(value))
        if depth < 3:
            for item in value[:20]:
                _flatten(item, out, depth + 1)
    elif kind is _ArrayFunctionDispatcher:
        _flatten(value._implementation, out, depth + 1)
    elif kind is not types.ModuleType and kind not in _SIMPLE:
        instance_dict = getattr(value, "__dict__", None)
        if type(instance_dict) is dict:
            for key, item in instance_dict.items():
                if callable(item) and callable(getattr(kind, key, None)):
                    append(key)


_SIMPLE = (int, float, str, bool, bytes, complex, type(None))


class _NoDispatcher:
    pass


try:
    from numpy import _ArrayFunctionDispatcher  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - older NumPy
    _ArrayFunctionDispatcher = _NoDispatcher


def _watched() -> tuple[list[str], list[int], list[Any]]:
    """Every watched object, flattened: (keys, where each key starts in the list, the list)."""
    keys: list[str] = []
    starts: list[int] = []
    flat: list[Any] = []
    for module_name in _FULL_MODULES:
        module = sys.modules.get(module_name)
        if module is None:
            continue
        namespace = vars(module)
        keys.append(f"{module_name}:*names")
        starts.append(len(flat))
        flat.append(len(namespace))
        flat.extend(namespace)
        flat.append(namespace.get("__builtins__"))
        for key, value in namespace.items():
            if not _is_dunder(key):
                keys.append(f"{module_name}:{key}")
                starts.append(len(flat))
                _flatten(value, flat)
    for module_name, paths in _PARTIAL.items():
        for path in paths:
            value = _lookup(module_name, path)
            keys.append(f"{module_name}:{path}")
            starts.append(len(flat))
            if value is _NOT_LOADED:
                flat.append(value)
            else:
                _flatten(value, flat)
    return keys, starts, flat


def _watched_now() -> list[Any]:
    """The flat list alone, built with as few allocations as possible (the per-probe path)."""
    flat: list[Any] = []
    for module_name in _FULL_MODULES:
        module = sys.modules.get(module_name)
        if module is None:
            continue
        namespace = vars(module)
        flat.append(len(namespace))
        flat.extend(namespace)
        flat.append(namespace.get("__builtins__"))
        for key, value in namespace.items():
            if not (key[:2] == "__" and key[-2:] == "__" and len(key) > 4):
                _flatten(value, flat)
    for module_name, paths in _SPLIT_PARTIAL:
        module = sys.modules.get(module_name)
        for parts in paths:
            value = module
            if value is None:
                flat.append(_NOT_LOADED)
                continue
            for part in parts:
                if type(value) is types.ModuleType:
                    namespace = vars(value)
                    if part in namespace:
                        value = namespace[part]
                    else:
                        value = _lookup(module_name, ".".join(parts))
                        break
                else:
                    try:
                        value = getattr(value, part)
                    except Exception:
                        value = _MISSING
                        break
            if value is _NOT_LOADED or value is _MISSING:
                flat.append(value)
            else:
                _flatten(value, flat)
    return flat


_SPLIT_PARTIAL = tuple(
    (module, tuple(tuple(path.split(".")) for path in paths)) for module, paths in _PARTIAL.items()
)


def _differences(now: list[Any]) -> list[str]:
    """The watched keys whose objects differ from the first probe's."""
    assert _baseline is not None
    keys, starts, before = _baseline
    if len(now) == len(before) and all(map(_is_same, now, before)):
        return []
    keys_now, starts_now, now = _watched()
    changed = []
    ends = [*starts[1:], len(before)]
    index_now = {key: i for i, key in enumerate(keys_now)}
    ends_now = [*starts_now[1:], len(now)]
    for i, key in enumerate(keys):
        j = index_now.get(key)
        if j is None:
            changed.append(key)
            continue
        old, new = before[starts[i] : ends[i]], now[starts_now[j] : ends_now[j]]
        if len(old) != len(new) or not all(map(_is_same, old, new)):
            changed.append(key)
    return changed


def _is_same(a: Any, b: Any) -> bool:
    return a is b or (type(a) is type(b) and type(a) in _SIMPLE and a == b)


def _describe_key(key: str) -> str:
    module_name, _, path = key.partition(":")
    if path.startswith("*"):
        return "its names" if path == "*names" else "its builtins"
    value = _lookup(module_name, path)
    return "missing" if value in (_MISSING, _NOT_LOADED) else _describe(value)


_baseline: tuple[list[str], list[int], list[Any]] | None = (
    None  # in the kernel, from the first probe
)
_baseline_digest: str | None = None
_baseline_threads: frozenset[int | None] | None = None
_KERNEL_PACKAGES = (
    "IPython.",
    "ipykernel.",
    "jupyter_client.",
    "zmq.",
    "tornado.",
    "asyncio.",
    "concurrent.",
    "threading",
    "matplotlib",
    "traitlets.",
    "comm.",
    "debugpy.",
    "queue",
    "selectors",
)


def _kernel_probe(ns: dict, nonce: str, expected_digest: str) -> None:
    """Run in the kernel by :func:`probe_code`: print the one reply line."""
    global _baseline, _baseline_digest, _baseline_threads
    problems: list[str] = []
    try:
        if _baseline is None:
            # The first run, before any student code: imports, and a full description. Its
            # warnings are silenced; later runs touch no warnings state (resetting the filters
            # would let a warning already shown once reach a test cell's stderr again).
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for module in (*_FULL_MODULES, *_PARTIAL):
                    __import__(module)
                if _digest(snapshot()) == expected_digest:
                    _baseline, _baseline_digest = _watched(), expected_digest
                    _baseline_threads = frozenset(
                        t.ident for t in sys.modules["threading"].enumerate()
                    )
                    _kernel_defaults()
                else:
                    problems.append(
                        "the watched code differs from the grading process's fingerprint at the "
                        "first probe (the probe must run right after the kernel starts, before any cell)"
                    )
        elif _baseline_digest != expected_digest:
            problems.append(
                "the probe's record of the kernel at start does not match this fingerprint"
            )
        else:
            for key in _differences(_watched_now()):
                problems.append(
                    f"{key.replace(':', '.')} was changed (now: {_describe_key(key)[:100]})"
                )
        _check_kernel(ns, problems.append)
    except BaseException as error:  # the probe must answer, whatever the kernel did to it
        problems.append(f"the probe could not finish: {type(error).__name__}: {error}"[:300])
    sys.stdout.write(f"{PROBE_PREFIX} {nonce} {json.dumps(problems)}\n")
    sys.stdout.flush()


@functools.cache
def _fingerprint() -> tuple[str, str]:
    import importlib

    for module in (*_FULL_MODULES, *_PARTIAL):
        importlib.import_module(module)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = snapshot()
    return json.dumps(found, sort_keys=True), _digest(found)


def fingerprint() -> dict:
    """What the probe compares the kernel against, computed here, in the grading process,
    from the same installed files ("module:attribute" -> description). Cached."""
    return json.loads(_fingerprint()[0])


def fingerprint_digest() -> str:
    """The digest of :func:`fingerprint` that every probe carries as a literal."""
    return _fingerprint()[1]


def new_nonce() -> str:
    """A fresh, unguessable token for one probe run."""
    return secrets.token_hex(12)


PROBE_PREFIX = "AUTOGRADER-PROBE"


def probe_code(nonce: str) -> str:
    """The source the grader runs in the kernel (``store_history=False``) before a test cell.

    It prints exactly one line, ``AUTOGRADER-PROBE <nonce> <json list of problems>``, and
    nothing to stderr. It binds no name in the notebook (it is one call), touches neither
    ``Out`` nor ``_`` nor ``In`` (its last statement is an ``if``, so nothing is displayed),
    allocates no NumPy memory and keeps no reference to the notebook's values. It carries
    the digest of the grading process's :func:`fingerprint` as a literal.

    Run it once right after the kernel starts, before any cell: that first run records the
    kernel's state and checks it against the fingerprint (a few hundred ms, once); later
    runs compare with it (a few ms). The cell is kept tiny on purpose: with tracemalloc on,
    IPython takes about 4 ms per kilobyte of cell source.
    """
    if not re.fullmatch(r"[A-Za-z0-9_-]{8,64}", nonce):
        raise ValueError("the nonce must be 8 to 64 letters, digits, '-' or '_'")
    return (
        "if True:\n"
        f"    __import__('autograder.integrity', None, None, ['_kernel_probe'])._kernel_probe("
        f"globals(), {nonce!r}, {fingerprint_digest()!r})\n"
    )


def read_probe(stdout_text: str, nonce: str, cell: str) -> list[Evidence]:
    """The evidence in a probe's stdout: none when the kernel is as expected.

    No line with the nonce, several, or one that does not parse: ``probe-no-reply`` (the
    output was swallowed or forged, or the probe did not run). Each problem the probe
    reports: ``probe-failed``.
    """
    prefix = f"{PROBE_PREFIX} {nonce} "
    replies = [line for line in stdout_text.splitlines() if nonce in line]
    if len(replies) != 1 or not replies[0].startswith(prefix):
        seen = (
            "no reply"
            if not replies
            else f"{len(replies)} lines mention the nonce: {replies[0][:120]!r}"
        )
        return [
            Evidence(
                "probe-no-reply",
                cell,
                f"the probe before this cell gave no well-formed reply ({seen})",
            )
        ]
    try:
        problems = json.loads(replies[0][len(prefix) :])
    except ValueError:
        problems = None
    if not isinstance(problems, list) or not all(isinstance(item, str) for item in problems):
        return [
            Evidence(
                "probe-no-reply", cell, f"the probe's reply is malformed: {replies[0][:160]!r}"
            )
        ]
    return [
        Evidence(
            "probe-failed", cell, f"before this cell, the kernel's state was changed: {problem}"
        )
        for problem in problems
    ]
