"""``zapflow-realtime [run|migrate]``."""

from __future__ import annotations

from zapflow.realtime.app import NAME, create_service
from zapflow.realtime.settings import Settings
from zapflow.runtime.main import run_service_main


def main() -> None:
    run_service_main(NAME, Settings, create_service)


if __name__ == "__main__":
    main()
