"""``zapflow-sender [run|migrate]``."""

from __future__ import annotations

from zapflow.runtime.main import run_service_main
from zapflow.sender.app import NAME, create_service
from zapflow.sender.settings import Settings


def main() -> None:
    run_service_main(NAME, Settings, create_service)


if __name__ == "__main__":
    main()
