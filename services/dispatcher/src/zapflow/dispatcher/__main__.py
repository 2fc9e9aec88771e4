"""``zapflow-dispatcher [run|migrate]``."""

from __future__ import annotations

from zapflow.dispatcher.app import NAME, create_service
from zapflow.dispatcher.settings import Settings
from zapflow.runtime.main import run_service_main


def main() -> None:
    run_service_main(NAME, Settings, create_service)


if __name__ == "__main__":
    main()
