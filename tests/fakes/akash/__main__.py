"""`python -m tests.fakes.akash --port 8790 --api-key KEY`: the fake Akash network alone."""

from __future__ import annotations

import argparse
import asyncio
import signal

from tests.fakes.akash import running_fake


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--provider-port", type=int, default=None)
    parser.add_argument("--api-key", default="ac.sk.test." + "0" * 64)
    parser.add_argument("--bid-delay", type=float, default=3.0, help="seconds until bids")
    parser.add_argument("--start-delay", type=float, default=2.0, help="seconds until ready")
    options = parser.parse_args()
    async with running_fake(
        api_key=options.api_key,
        port=options.port,
        provider_port=options.provider_port,
        bid_delay=options.bid_delay,
        start_delay=options.start_delay,
    ) as fake:
        print(f"fake Console API on {fake.console_url}, provider {fake.provider_url}", flush=True)
        stop = asyncio.Event()
        for number in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(number, stop.set)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
