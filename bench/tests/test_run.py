from types import ModuleType

from bench.run import Benchmark


def test_a_module_may_declare_its_own_time_limit() -> None:
    plain, own = ModuleType("bench_plain"), ModuleType("bench_own")
    own.TIMEOUT_S = 300  # type: ignore[attr-defined]
    own.QUICK_TIMEOUT_S = 90  # type: ignore[attr-defined]

    assert Benchmark("plain", plain).timeout(quick=False, default=120) == 120
    assert Benchmark("own", own).timeout(quick=False, default=120) == 300
    assert Benchmark("own", own).timeout(quick=True, default=60) == 90
