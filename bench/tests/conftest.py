"""A benchmark run's context for tests: the shared servers of ``bench.infra`` in a scratch dir.

The servers enforce the test session's NATS identities (``zapflow.testing.identities``), already
in the environment, so that the services a benchmark starts and the session's other tests agree
on them.
"""

import shutil
from collections.abc import Iterator

import pytest

from bench import infra
from bench.context import Context
from bench.load import LoadSettings
from zapflow.testing import identities
from zapflow.testing.scratch import make_scratch_dir


@pytest.fixture(scope="module")
def bench_ctx() -> Iterator[Context]:
    """A ``--quick`` context on servers of the module's own."""
    scratch = make_scratch_dir("zf-bench-test-")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in identities.session_identities().environment().items():
            patch.setenv(name, value)
        patch.setattr(infra, "identities", identities.session_identities)
        with infra.shared_infra(scratch) as servers:
            yield Context(
                nats_url=servers.nats_url,
                create_database=servers.create_database,
                workdir=scratch,
                quick=True,
                duration=1.5,
                load=LoadSettings(connections=8, duration=1, warmup=0, tool="python"),
                postgres_pid=servers.postgres.pid,
            )
    shutil.rmtree(scratch, ignore_errors=True)
