"""Command line: run | check | validate | explain | history | rekey | newkey | demo.

Exit codes are part of the contract: 0 all well, 1 something failing (or an unknown
code for `explain`), 2 a bad config or bad arguments, 3 `run` cannot start on this host
(the store is locked by another daemon, unreadable or not a database, its directory is
missing, the listen address is taken). Each of 2 and 3 comes with one line naming the key
or the file, never a traceback; neither is fixed by trying again, so systemd does not
restart on them (`RestartPreventExitStatus=2 3`). A bad config never starts anything.
`history` reads the running daemon's API: 1 for an id it does not know, 3 when no daemon
answers.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from healthd import config, loop
from healthd.catalog import load as load_catalog
from healthd.errors import CodeNotFound, ConfigError, StoreError
from healthd.model import Finding, ProbeResult, Status
from healthd.vault import new_key
from healthd.version import __version__

EXIT_OK, EXIT_FAILING, EXIT_CONFIG, EXIT_CANNOT_START = 0, 1, 2, 3


class CannotStart(Exception):
    """`run` failed before the daemon was up, for a reason outside the config's text."""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"healthd: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except CannotStart as exc:
        print(f"healthd: cannot start: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    except KeyboardInterrupt:
        return EXIT_OK
    return code


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="healthd", description="Health checks and alerting for messaging integrations."
    )
    p.add_argument("--version", action="version", version=f"healthd {__version__}")
    sub = p.add_subparsers(required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config", required=True, metavar="FILE")
    run.add_argument("--listen", metavar="HOST:PORT", help=f"default {config.DEFAULT_LISTEN}")
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run.set_defaults(func=_run)

    check = sub.add_parser("check", help="probe every integration once and print a table")
    check.add_argument("--config", required=True, metavar="FILE")
    check.set_defaults(func=_check)

    validate = sub.add_parser("validate", help="validate a config file (exit 0 or 2)")
    validate.add_argument("--config", required=True, metavar="FILE")
    validate.set_defaults(func=_validate)

    explain = sub.add_parser("explain", help="what a provider error code means and how to fix it")
    explain.add_argument("provider")
    explain.add_argument("code")
    explain.set_defaults(func=_explain)

    history = sub.add_parser(
        "history", help="one integration's uptime, incidents and changes, from the daemon"
    )
    history.add_argument("id", metavar="ID", help="the integration's id")
    history.add_argument("--config", required=True, metavar="FILE")
    history.add_argument(
        "--url", metavar="URL", help="the daemon's address (default: the config's listen)"
    )
    history.set_defaults(func=_history)
    rekey = sub.add_parser(
        "rekey", help="seal every registry credential again under registry.keys[0]"
    )
    rekey.add_argument("--config", required=True, metavar="FILE")
    rekey.set_defaults(func=_rekey)

    newkey = sub.add_parser("newkey", help="print a fresh registry key (base64, 32 bytes)")
    newkey.set_defaults(func=_newkey)

    demo = sub.add_parser("demo", help="the daemon against the built-in provider simulator")
    demo.add_argument("--listen", metavar="HOST:PORT", default=config.DEFAULT_LISTEN)
    demo.add_argument(
        "--duration", type=float, default=None, metavar="SECONDS", help="stop after this long"
    )
    demo.add_argument(
        "--page-after",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="the bridge rule's allowance in the demo (10 minutes in production)",
    )
    demo.set_defaults(func=_demo)
    return p


def _validate(args: argparse.Namespace) -> int:
    cfg = config.load(args.config)
    providers = sorted({i.provider for i in cfg.integrations})
    print(
        f"{args.config}: ok: {len(cfg.integrations)} integrations"
        + (f" ({', '.join(providers)})" if providers else "")
    )
    return EXIT_OK


def _rekey(args: argparse.Namespace) -> int:
    """With the daemon stopped (the store's lock says so otherwise): every credential the
    registry holds under an older key is sealed under the first; then the old key may go."""
    from healthd.fleet import rekey_store

    cfg = config.load(args.config)
    try:
        changed, total = loop.run(rekey_store(cfg))
    except StoreError as exc:
        raise CannotStart(str(exc)) from None
    print(f"{args.config}: {changed} of {total} registered integrations sealed again")
    return EXIT_OK


def _newkey(args: argparse.Namespace) -> int:
    print(new_key())
    return EXIT_OK


def _explain(args: argparse.Namespace) -> int:
    try:
        entry = load_catalog().lookup(args.provider, args.code)
    except CodeNotFound as exc:
        print(f"healthd: {exc}", file=sys.stderr)
        return EXIT_FAILING
    print(f"{entry.provider} {entry.code}: {entry.title}")
    print(
        f"  category:  {entry.category.value}"
        + ("" if entry.counts_against_health else " (does not count against health)")
    )
    print(f"  meaning:   {entry.meaning}")
    print(f"  fix:       {entry.fix}")
    return EXIT_OK


def _history(args: argparse.Namespace) -> int:
    """Exit 0 printed, 1 no such integration, 3 no daemon answered (see history_report)."""
    from healthd import history_report as report

    cfg = config.load(args.config)
    url = (args.url or report.daemon_url(cfg)).rstrip("/")
    try:
        found = report.fetch(url, report.admin_token(cfg), args.id)
    except report.NotFound as exc:
        print(f"healthd: {exc}", file=sys.stderr)
        return EXIT_FAILING
    except report.Unreachable as exc:
        print(f"healthd: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    report.render(found, sys.stdout)
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from healthd import log
    from healthd.daemon import Daemon
    from healthd.gctune import settle_startup_heap

    cfg = config.load(args.config, listen=args.listen)
    log.configure(_secret_values(cfg), level=args.log_level)

    async def serve() -> None:
        started = False
        try:
            async with Daemon(cfg) as daemon:
                started = True
                # Only in the process that runs the daemon: tests start many in one process.
                settle_startup_heap()
                await daemon.wait()
        except (StoreError, OSError) as exc:
            if started:
                raise
            raise CannotStart(_start_failure(exc, cfg)) from None

    loop.run(serve())
    return EXIT_OK


def _start_failure(exc: StoreError | OSError, cfg: config.Config) -> str:
    """One line naming what could not be used. A StoreError names its file already; an
    OSError with a file name is about that file; any other is the listen address's."""
    if isinstance(exc, StoreError):
        return str(exc)
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    if exc.filename is not None:
        return f"{exc.filename}: {reason}"
    host, port = cfg.listen
    return f"cannot listen on {host}:{port} (listen): {reason}"


def _check(args: argparse.Namespace) -> int:
    from healthd import log
    from healthd.sweep import sweep

    cfg = config.load(args.config)
    log.configure(_secret_values(cfg), level="error")
    results = loop.run(sweep(cfg))
    print_table(cfg, results, sys.stdout)
    return EXIT_FAILING if any(r.status.is_bad for r in results) else EXIT_OK


def print_table(cfg: config.Config, results: Sequence[ProbeResult], out: TextIO) -> None:
    """One line per integration with its worst finding, and the fix under anything broken."""
    by_id = {i.id: i for i in cfg.integrations}
    header = ("INTEGRATION", "PROVIDER", "TENANT", "STATUS")
    rows: list[tuple[tuple[str, ...], Finding | None]] = []
    for r in results:
        i = by_id[r.integration_id]
        worst = [f for f in r.findings if f.status is r.status] or list(r.findings)
        rows.append(((i.id, i.provider, i.tenant, r.status.value), worst[0] if worst else None))
    width = [max([len(h), *(len(cols[n]) for cols, _ in rows)]) for n, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, width, strict=True)) + "  FINDING", file=out)
    for cols, finding in rows:
        line = "  ".join(c.ljust(w) for c, w in zip(cols, width, strict=True))
        print(f"{line}  {f'{finding.code}: {finding.summary}' if finding else ''}", file=out)
        if finding and finding.status not in (Status.OK, Status.UNKNOWN) and finding.remediation:
            print(f"{'':{sum(width) + 2 * len(width)}}fix: {finding.remediation}", file=out)
    bad = sum(1 for r in results if r.status.is_bad)
    print(f"\n{len(results)} integrations, {bad} failing", file=out)


def _demo(args: argparse.Namespace) -> int:
    from healthd.demo import run_demo

    return run_demo(listen=args.listen, duration=args.duration, page_after=args.page_after)


def _secret_values(cfg: config.Config) -> list[str]:
    values = [s.reveal() for i in cfg.integrations for s in i.credentials.values()]
    values += [t.token.reveal() for t in cfg.api.tokens]
    if cfg.alerting.pagerduty is not None:
        values.append(cfg.alerting.pagerduty.routing_key.reveal())
    values += [hook.secret.reveal() for hook in cfg.alerting.webhooks.values()]
    return values


if __name__ == "__main__":
    sys.exit(main())
