"""Run the fake yagna as its own process:

    python -m tests.fakes.golem --port 7465

Then point the gateway at it: CORTEX_GOLEM_API_URL=http://127.0.0.1:7465,
CORTEX_GOLEM_REGISTRY_URL=http://127.0.0.1:7465, CORTEX_GOLEM_APP_KEY=cortex-fake-app-key.
Images it knows: cortex/busybox:1, golem/alpine:latest. `run` commands execute on this host.
"""

from __future__ import annotations

import argparse

import uvicorn

from tests.fakes.golem import APP_KEY, IMAGES, new_yagna
from tests.fakes.golem.app import build_app
from tests.fakes.golem.network import Timing


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.golem", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7465)
    parser.add_argument("--app-key", default=APP_KEY)
    defaults = Timing()
    parser.add_argument("--deploy-seconds", type=float, default=1.0)
    parser.add_argument("--approve-seconds", type=float, default=defaults.approve_seconds)
    parser.add_argument("--debit-note-interval", type=float, default=5.0)
    parser.add_argument(
        "--idle-agreement-seconds", type=float, default=defaults.idle_agreement_seconds
    )
    options = parser.parse_args()
    timing = Timing(
        deploy_seconds=options.deploy_seconds,
        approve_seconds=options.approve_seconds,
        debit_note_interval=options.debit_note_interval,
        idle_agreement_seconds=options.idle_agreement_seconds,
    )
    yagna = new_yagna(timing)
    yagna.app_key = options.app_key
    print(f"fake yagna on http://{options.host}:{options.port} (app key {options.app_key})")
    print("images:", ", ".join(IMAGES), flush=True)
    uvicorn.run(
        build_app(yagna),
        host=options.host,
        port=options.port,
        log_level="warning",
        timeout_graceful_shutdown=1,
    )


if __name__ == "__main__":
    main()
