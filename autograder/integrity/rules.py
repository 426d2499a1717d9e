"""The static read's rules: which names, modules, attributes and magics a student's code may use.

Plain tables, no logic: the scanner (:mod:`autograder.integrity.static`) judges a cell by
them, and the kernel probe imports :data:`PROTECTED_BUILTINS` from here (this module must
stay cheap to import: it runs in the student's kernel).
"""

from __future__ import annotations


def words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Names that refer to a protected module when a notebook has not imported them itself.
DEFAULT_MODULE_NAMES: dict[str, str] = {
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
# tests/integrity/test_static_read.py. Names honest students shadow (sum, max, min, id, type, ...)
# are not here: no test cell uses them.
PROTECTED_BUILTINS = words(
    "float globals int isinstance len range str print AssertionError exec eval "
    "compile __import__ getattr hasattr setattr delattr super object issubclass bool "
    "locals vars repr get_ipython"
)

# The checks a student may call: reading, measuring, asserting. Everything else in
# autograder (track, _tracked, memory.*, references.*) is the grader's.
CHECKS_PUBLIC = words(
    "assert_freed assert_in_place assert_no_leak assert_peak_below forget_last_error "
    "holders_of measure numpy_bytes_now start_tracing"
)

ALLOWED_MAGICS = words(
    "xdel reset reset_selective time timeit matplotlib who whos who_ls precision "
    "capture pinfo pinfo2 psearch pdoc pdef psource pfile pwd lsmagic magic quickref "
    "history"
)
SHELL_MAGICS = words(
    "system sx bash sh script perl ruby python python2 python3 pypy writefile file "
    "html javascript js svg latex"
)
TRACE_MAGICS = frozenset({"pdb", "debug", "prun", "tb"})

TRACEMALLOC_READ = words(
    "get_traced_memory take_snapshot is_tracing get_tracemalloc_memory "
    "get_object_traceback get_traceback_limit DomainFilter Filter BaseFilter Snapshot "
    "Statistic StatisticDiff Trace Traceback Frame"
)
GC_ALLOWED = words(
    "collect isenabled enable disable get_count get_threshold is_tracked is_finalized "
    "get_stats get_freeze_count DEBUG_STATS"
)
GC_HOOKS = frozenset({"callbacks"})
SYS_ALLOWED = words(
    "getsizeof getrefcount last_type last_value last_traceback last_exc version "
    "version_info hexversion platform maxsize byteorder float_info int_info "
    "implementation stdout stderr executable getrecursionlimit getdefaultencoding "
    "float_repr_style api_version path argv flags getallocatedblocks exc_info "
    "exception prefix base_prefix maxunicode getswitchinterval thread_info copyright"
)
SYS_TRACE = words(
    "settrace setprofile gettrace getprofile monitoring addaudithook audit "
    "call_tracing _settraceallthreads _setprofileallthreads breakpointhook "
    "__breakpointhook__"
)
SYS_HOOKS = frozenset(
    {"displayhook", "excepthook", "__displayhook__", "__excepthook__", "unraisablehook"}
)
OS_EXIT = frozenset({"_exit", "abort", "kill", "killpg"})
OS_SHELL_PREFIXES = ("system", "popen", "exec", "spawn", "fork", "posix_spawn", "startfile")
OS_WRITES = words(
    "chmod chown lchown symlink link write open putenv unsetenv chdir fchdir chroot "
    "setuid setgid nice setpgid setsid dup2 mkfifo mknod"
)
# Working with files: a technique the exercises do not accept (see TECHNIQUES), not tampering.
OS_FILE_WRITES = words(
    "remove unlink rename renames replace rmdir removedirs mkdir makedirs truncate"
)

# Imports that are evidence by themselves, by top-level module name.
IMPORT_FLAGS: dict[str, str] = {
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
    "threading": "threads",
    "_thread": "threads",
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
    "mmap": "untraced-memory",
    "_tracemalloc": "tracker-tampering",
    "ipykernel": "ipython-hook",
    "jupyter_client": "ipython-hook",
    "traitlets": "ipython-hook",
    "matplotlib_inline": "ipython-hook",
}
# NumPy arrays backed by a mapped file: their memory is outside tracemalloc's NumPy domain.
UNTRACED_NUMPY = frozenset({"memmap", "open_memmap"})
# Turning bytes back into objects runs any code they name (pickle.dumps is only a technique).
PICKLE_LOADERS = frozenset({"load", "loads", "Unpickler", "_load", "_loads", "_Unpickler"})
TYPES_ALLOWED = frozenset({"SimpleNamespace", "MappingProxyType", "GeneratorType", "NoneType"})

SAFE_DUNDER_ATTRS = words(
    "__name__ __qualname__ __doc__ __class__ __module__ __version__ "
    "__array_interface__ __len__ __init__ __repr__ __str__ __iter__ __next__ "
    "__enter__ __exit__ __contains__ __getitem__ __sizeof__ __annotations__ "
    "__dataclass_fields__ __match_args__ __traceback__"
)
# Introspection attributes that reach frames, code and other modules' globals.
FRAME_ATTRS = words(
    "f_globals f_locals f_back f_builtins f_code f_trace f_lineno tb_frame gi_frame "
    "cr_frame ag_frame gi_code cr_code co_code co_consts co_names cell_contents"
)
SYS_LAST = frozenset({"last_type", "last_value", "last_traceback", "last_exc"})
THREADING_TRACE = frozenset(
    {"settrace", "setprofile", "settrace_all_threads", "setprofile_all_threads"}
)
# Attribute chains that name whole modules (passing one around is like passing `np`).
KNOWN_SUBMODULES = words(
    "numpy.random numpy.lib numpy.linalg numpy.fft numpy.ma numpy.char numpy.core "
    "numpy._core numpy.testing numpy.polynomial numpy.strings numpy.rec numpy.dtypes "
    "numpy.exceptions numpy.typing os.path autograder.checks autograder.checks.memory "
    "autograder.checks.references IPython.display IPython.core"
)
SAFE_DUNDER_NAMES = frozenset({"__name__", "__doc__"})
# Class-body names that make an object lie about its type, its comparisons, or NumPy's view of it.
FAKE_DUNDERS = words(
    "__class__ __instancecheck__ __subclasscheck__ __getattribute__ "
    "__array_function__ __array_ufunc__ __array__ __array_interface__ "
    "__array_struct__ __array_priority__ __array_wrap__ __array_finalize__ "
    "__array_namespace__ __init_subclass__ __class_getitem__ __set_name__"
)
# Builtin value types whose subclasses can pass an isinstance check and then lie.
VALUE_TYPES = frozenset({"str", "int", "float", "complex", "bytes", "bool", "bytearray"})

NAMESPACE_READERS = frozenset({"pop", "get", "keys", "items", "values", "copy", "__contains__"})
NAMESPACE_SAFE_CONSUMERS = words(
    "print len list sorted set repr str tuple any all enumerate iter dir"
)
MODULE_SAFE_CONSUMERS = frozenset(
    {"print", "repr", "str", "type", "id", "dir", "help", "isinstance", "hasattr", "callable"}
)
MUTATORS = words(
    "append extend insert remove pop popitem clear update setdefault add discard "
    "__setitem__ __delitem__ sort reverse"
)
# Imported libraries whose settings students change honestly (plt.rcParams[...] = ...,
# pd.options.display...) and that cannot change a grade.
DISPLAY_LIBRARIES = frozenset({"matplotlib", "pandas", "seaborn"})
EXIT_EXCEPTIONS = frozenset({"SystemExit", "KeyboardInterrupt", "GeneratorExit", "BaseException"})
