"""One blocking DB-API connection, owned by one dedicated thread, awaited from the loop.

A blocking driver (sqlite3) must never run on the event loop. Every piece of work runs on a
single-thread executor and the loop only awaits a future; one thread also means the
connection is never shared between threads, and the store's own calls are serialised
without a lock. A backend on an async driver (asyncpg, psycopg's async connection) needs
none of this and awaits its driver directly.

Every driver error (`errors`) becomes a `StoreError` that names the store and the operation.
Cancelling a call does not stop its work: the thread finishes what it started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from healthd.errors import StoreError

C = TypeVar("C")
T = TypeVar("T")


class ConnectionThread(Generic[C]):
    """Runs `work(connection)` on the connection's own thread.

    `connect` (on that thread, at `open`) returns a connection ready for use, or raises
    having closed what it opened; `disconnect` closes it at `close`. `label` starts every
    error message (`sqlite store /var/lib/healthd/state.db`). `check`, when given, runs on
    the thread before each piece of work and returns the connection to use: the same one,
    a new one that replaces it, or it raises (a driver error or a StoreError).
    """

    def __init__(
        self,
        label: str,
        *,
        connect: Callable[[], C],
        disconnect: Callable[[C], None],
        errors: type[Exception],
        check: Callable[[C], C] | None = None,
    ) -> None:
        self.label = label
        self._connect = connect
        self._check = check
        self._disconnect = disconnect
        self._errors = errors
        self._executor: ThreadPoolExecutor | None = None
        self._conn: C | None = None

    async def open(self) -> None:
        if self._executor is not None:
            raise StoreError(f"{self.label}: already open")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="healthd-store")
        try:
            await self._submit("open", self._open_connection)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    async def close(self) -> None:
        if self._executor is None:
            return
        try:
            await self._submit("close", self._close_connection)
        finally:
            self._executor.shutdown(wait=True)
            self._executor = None

    def ensure_open(self, operation: str) -> None:
        self._running(operation)

    async def run(self, operation: str, work: Callable[[C], T]) -> T:
        return await self._submit(operation, lambda: work(self._connection()))

    def failure_message(self, operation: str, exc: Exception) -> str:
        """The message of the StoreError for `exc` raised by `operation`."""
        return f"{self.label}: {operation} failed: {exc}"

    async def _submit(self, operation: str, work: Callable[[], T]) -> T:
        executor = self._running(operation)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, self._guarded, operation, work)

    def _running(self, operation: str) -> ThreadPoolExecutor:
        if self._executor is None:
            raise StoreError(f"{self.label}: {operation} on a store that is not open")
        return self._executor

    def _guarded(self, operation: str, work: Callable[[], T]) -> T:
        try:
            return work()
        except self._errors as exc:
            raise StoreError(self.failure_message(operation, exc)) from exc

    def _connection(self) -> C:
        if self._conn is None:
            raise StoreError(f"{self.label}: not open")
        if self._check is not None:
            self._conn = self._check(self._conn)
        return self._conn

    def _open_connection(self) -> None:
        self._conn = self._connect()

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._disconnect(self._conn)
            self._conn = None
