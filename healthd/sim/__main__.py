"""`python -m healthd.sim`: run the simulator standalone (benchmarks, manual poking).

Prints one JSON line once both listeners are up:
`{"http_url": ..., "https_url": ..., "ca_path": ..., "providers": [...]}`, then serves until
SIGINT or SIGTERM. `--ca-out PATH` copies the throwaway CA there (the original is deleted
at exit), and `ca_path` then names the copy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import sys
from collections.abc import Sequence

from healthd import loop
from healthd.sim.app import Simulator


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m healthd.sim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="plain HTTP port (0: any free)")
    parser.add_argument("--https-port", type=int, default=0, help="HTTPS port (0: any free)")
    parser.add_argument("--ca-out", metavar="PATH", help="copy the CA certificate (PEM) here")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Simulator(args.host, args.port, args.https_port) as sim:
        ca_path = str(sim.ca_path)
        if args.ca_out:
            ca_path = shutil.copyfile(sim.ca_path, args.ca_out)
        line = {
            "http_url": sim.http_url,
            "https_url": sim.https_url,
            "ca_path": ca_path,
            "providers": sim.providers,
        }
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> None:
    loop.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()
