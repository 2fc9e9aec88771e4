"""The runner: discover ``bench/bench_*.py``, start the shared servers once, run, report.

Each benchmark module exposes ``run(ctx: Context) -> list[Figure]`` (``async def`` or plain ``def``;
a plain one runs in a thread). Modules run one after another, in name order, each bounded by
``--timeout`` (by default 120 s, 60 s with ``--quick``, or the module's own ``TIMEOUT_S`` /
``QUICK_TIMEOUT_S`` when it declares one); a module that fails or times out is reported under the
table and makes the exit status 1, the others still count.
"""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import importlib
import inspect
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import cast

import uvloop

from bench.context import Context
from bench.infra import shared_infra
from bench.load import LoadSettings, resolve_tool
from bench.report import Failure, Figure, format_table, median_figures, write_json
from zapflow.runtime.settings import local_deployment_env

BENCH_DIR = Path(__file__).resolve().parent
RunFn = Callable[[Context], "list[Figure] | Awaitable[list[Figure]]"]


@dataclass(frozen=True)
class Benchmark:
    name: str
    """The module name without ``bench_`` (what ``--only`` matches)."""
    module: ModuleType

    @property
    def run(self) -> RunFn:
        return cast(RunFn, self.module.run)

    def timeout(self, quick: bool, default: float) -> float:
        """The module's ``TIMEOUT_S`` (``QUICK_TIMEOUT_S`` with ``--quick``) or ``default``."""
        own = getattr(self.module, "QUICK_TIMEOUT_S" if quick else "TIMEOUT_S", None)
        return default if own is None else float(own)


def discover(only: Sequence[str] = ()) -> list[Benchmark]:
    """Import every ``bench/bench_*.py`` whose short name matches one of ``only`` (all if empty).

    A pattern matches as a glob (``nats*``) or a substring (``asgi``).
    """
    found = []
    for path in sorted(BENCH_DIR.glob("bench_*.py")):
        name = path.stem.removeprefix("bench_")
        if only and not any(p in name or fnmatch.fnmatch(name, p) for p in only):
            continue
        module = importlib.import_module(f"bench.{path.stem}")
        if not callable(getattr(module, "run", None)):
            raise SystemExit(f"{path} has no run(ctx) function")
        found.append(Benchmark(name, module))
    return found


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PATTERN",
        help="run only modules matching PATTERN (glob or substring; repeat or comma-separate)",
    )
    parser.add_argument("--quick", action="store_true", help="short windows (a smoke run of ~30 s)")
    parser.add_argument(
        "--load-tool",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="HTTP load generator (auto: wrk when installed)",
    )
    parser.add_argument("--connections", type=int, default=32, help="HTTP connections")
    parser.add_argument("--timeout", type=float, help="seconds allowed per module")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run everything N times and report the median of each value and reference",
    )
    parser.add_argument(
        "--output", type=Path, default=BENCH_DIR / "results.json", help="results file"
    )
    parser.add_argument("--list", action="store_true", help="list the modules and exit")
    args = parser.parse_args(argv)
    args.only = [p.strip() for arg in args.only for p in arg.split(",") if p.strip()]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # a local development deployment, like `zapflow up`: the fake providers are on loopback
    os.environ.update(local_deployment_env(os.environ))
    benchmarks = discover(args.only)
    if args.list or not benchmarks:
        print("\n".join(b.name for b in benchmarks) or "no benchmark matches")
        return 0 if benchmarks else 2
    load = LoadSettings(
        connections=args.connections,
        duration=2 if args.quick else 5,
        tool=args.load_tool,
    )
    default_seconds = 60.0 if args.quick else 120.0
    module_seconds = {
        b.name: args.timeout or b.timeout(args.quick, default_seconds) for b in benchmarks
    }
    _progress(f"load generator: {resolve_tool(load.tool)}, {load.connections} connections")
    rounds: list[list[Figure]] = []
    failures: list[Failure] = []
    with tempfile.TemporaryDirectory(prefix="zf-bench-") as tmp, shared_infra(Path(tmp)) as infra:
        for round_no in range(1, args.repeat + 1):
            if args.repeat > 1:
                _progress(f"round {round_no}/{args.repeat}")
            ctx = Context(  # a fresh context per round: references are re-measured too
                nats_url=infra.nats_url,
                create_database=infra.create_database,
                workdir=Path(tmp),
                quick=args.quick,
                duration=1.5 if args.quick else 5.0,
                load=load,
                postgres_pid=infra.postgres.pid,
            )
            figures, failed = uvloop.run(_run_all(benchmarks, ctx, module_seconds))
            rounds.append(figures)
            failures.extend(failed)
    figures = median_figures(rounds)
    print(format_table(figures, failures))
    write_json(args.output, figures)
    _progress(f"wrote {args.output}")
    return 1 if failures else 0


async def _run_all(
    benchmarks: Sequence[Benchmark], ctx: Context, module_seconds: Mapping[str, float]
) -> tuple[list[Figure], list[Failure]]:
    figures: list[Figure] = []
    failures: list[Failure] = []
    for bench in benchmarks:
        _progress(f"running {bench.name} ...")
        started = time.perf_counter()
        try:
            async with asyncio.timeout(module_seconds[bench.name]):
                produced = await _call(bench.run, ctx)
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            message = (
                "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
            )
            failures.append(Failure(bench.name, message))
            _progress(
                f"  {bench.name} FAILED after {time.perf_counter() - started:.1f}s: {message}"
            )
            continue
        names = {f.name for f in figures}
        if clash := [f.name for f in produced if f.name in names]:
            failures.append(Failure(bench.name, f"figure names already used: {clash}"))
            continue
        figures.extend(produced)
        _progress(
            f"  {bench.name}: {len(produced)} figures in {time.perf_counter() - started:.1f}s"
        )
    return figures, failures


async def _call(run: RunFn, ctx: Context) -> list[Figure]:
    if inspect.iscoroutinefunction(run):
        return await cast(Callable[[Context], Awaitable[list[Figure]]], run)(ctx)
    return await asyncio.to_thread(cast(Callable[[Context], list[Figure]], run), ctx)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
