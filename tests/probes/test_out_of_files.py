"""A probe that cannot open a socket because healthd is out of file descriptors.

The failure is healthd's, not the provider's: the finding is `healthd.out_of_file_descriptors`
with status unknown, never the provider's `unreachable` (which would page a healthy bridge).
The socket factory stands in for `socket()` failing with EMFILE/ENFILE, exactly where a
process at its file limit fails.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from typing import Any

import aiohttp
import pytest

from healthd import probing
from healthd.clock import SystemClock
from healthd.interfaces import ProbeContext
from healthd.model import Category, Status
from probes.bridge import BridgeOptions, BridgeProbe
from tests.email_support import make_integration, shared_catalog


def out_of_files(code: int) -> Any:
    def factory(addr_info: Any) -> socket.socket:
        raise OSError(code, os.strerror(code))

    return factory


@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENFILE], ids=errno.errorcode.get)
async def test_a_connect_without_a_free_descriptor_is_a_finding_about_healthd(code: int) -> None:
    integration = make_integration(
        "imessage_bridge", "http://127.0.0.1:9", {"password": "p"}, BridgeOptions()
    )
    connector = aiohttp.TCPConnector(socket_factory=out_of_files(code))
    async with aiohttp.ClientSession(connector=connector) as session, asyncio.timeout(10):
        ctx = ProbeContext(
            session=session, clock=SystemClock(), catalog=shared_catalog(), timeout=5.0
        )
        result = await probing.check(BridgeProbe(), integration, ctx)

    assert result.status is Status.UNKNOWN
    assert [f.code for f in result.findings] == ["healthd.out_of_file_descriptors"]
    finding = result.findings[0]
    assert finding.category is Category.UNKNOWN
    assert not finding.network_error
