from profiler.fold import fold
from profiler.options import Grouping
from profiler.symbolize.symbolizer import SymbolizedSample


def s(comm, user, kernel, n, pid=10, tid=11):
    return SymbolizedSample(pid=pid, tid=tid, comm=comm, user=tuple(user), kernel=tuple(kernel),
                            count=n)


def test_canonical_folded_lines():
    lines = fold([s("b", ["main", "f;g"], ["sys_read"], 2), s("a", ["main"], [], 1),
                  s("b", ["main", "f;g"], ["sys_read"], 3)])
    assert lines == ["a;main 1", "b;main;f:g;sys_read_[k] 5"]


def test_process_and_thread_grouping():
    samples = [s("app", ["main"], [], 1, pid=7, tid=8)]
    assert fold(samples, Grouping.PROCESS) == ["app-7;main 1"]
    assert fold(samples, Grouping.THREAD) == ["app-7/8;main 1"]


def test_order_is_independent_of_input_order():
    a = [s("x", ["m", str(i)], [], i + 1) for i in range(20)]
    assert fold(a) == fold(list(reversed(a))) == sorted(fold(a))


def test_process_names_have_spaces_made_underscores_as_stackcollapse_perf_does():
    samples = [s("my app;x", ["main"], [], 1, pid=7, tid=8)]
    assert fold(samples) == ["my_app:x;main 1"]
    assert fold(samples, Grouping.THREAD) == ["my_app:x-7/8;main 1"]
