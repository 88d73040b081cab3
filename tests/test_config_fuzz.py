"""`healthd validate` on generated config files: exit 0 or 2, never a traceback.

A config is typed by hand at 3 a.m. Whatever the file holds (YAML that does not parse,
a list or a number at the top, keys that are numbers or lists, the wrong type at a known
key, a duration, URL or secret reference that is almost right, deep nesting, bytes that
are not UTF-8), the answer is exit 2 and a line naming the key, or exit 0. An exception
out of `main` is a traceback at the operator; this test calls `main` in-process and
fails on one, printing the file that caused it.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from healthd.cli import main

KNOWN_KEYS: dict[str, list[str]] = {
    "": ["listen", "store", "defaults", "alerting", "api", "integrations"],
    "defaults": ["interval", "timeout", "jitter", "failure_threshold", "concurrency"],
    "alerting": ["pagerduty", "outbox", "rules", "webhooks", "maintenance"],
    "alerting.pagerduty": ["routing_key", "events_url", "ca_bundle", "timeout", "source"],
    "alerting.outbox": ["backoff_initial", "backoff_max", "max_attempts_400", "send_timeout"],
    "api": [
        "tokens",
        "metrics_require_token",
        "metrics_detail_limit",
        "health_require_token",
        "check_rate_limit",
    ],
    "integration": [
        "id",
        "provider",
        "tenant",
        "base_url",
        "interval",
        "timeout",
        "page_after",
        "failure_threshold",
        "credentials",
        "options",
    ],
}

# Values close to the right ones, where validation has to look closely.
near_misses = st.sampled_from(
    [
        "10s",
        "0s",
        "-1s",
        "1e400s",
        "10 minutes",
        "99999999999999999999d",
        "nan",
        "inf",
        "env:",
        "env:HEALTHD_FUZZ_UNSET",
        "env:PATH",
        "file:",
        "file:/nonexistent",
        "file:/",
        "file:/dev/null",
        "file:\x00",
        "file:/proc/self/mem",
        "https://",
        "http://[::1",
        "https://events.pagerduty.com",
        "ftp://x",
        "sqlite://",
        "sqlite:///",
        "memory:",
        "x.db",
        "127.0.0.1:99999",
        "[::1]:0",
        ":0",
        "imessage_bridge",
        "twilio",
        "sendgrid",
        "google",
        "bridge-dc1",
    ]
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**30, max_value=10**400),
    st.floats(),
    st.text(max_size=30),
    near_misses,
)
keys = st.one_of(st.text(max_size=12), st.integers(), st.booleans(), st.none(), near_misses)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=20,
)


@st.composite
def known_shapes(draw: st.DrawFn) -> dict[Any, Any]:
    """A mapping at the top whose known keys hold random values, some one level down."""

    def block(section: str) -> dict[Any, Any]:
        names = draw(st.lists(st.sampled_from(KNOWN_KEYS[section]), unique=True, max_size=5))
        out: dict[Any, Any] = {}
        for name in names:
            sub = f"{section}.{name}" if section else name
            if sub in KNOWN_KEYS and draw(st.booleans()):
                out[name] = block(sub)
            elif name == "integrations" and draw(st.booleans()):
                out[name] = [block("integration") for _ in range(draw(st.integers(0, 2)))]
            elif name == "tokens" and draw(st.booleans()):
                out[name] = [
                    draw(
                        st.dictionaries(
                            st.sampled_from(["name", "token", "role", "tenant"]), values
                        )
                    )
                ]
            else:
                out[name] = draw(values)
        return out

    doc = block("")
    if draw(st.booleans()):
        doc[draw(keys)] = draw(values)
    return doc


def dump(doc: object) -> str:
    return yaml.safe_dump(doc, allow_unicode=True)


deep = st.integers(1, 300).map(lambda n: "a:\n" + "".join(f"{'  ' * i}b{i}:\n" for i in range(n)))
raw_yaml = st.sampled_from(
    [
        "? [a, b]\n: c\n",
        "? {a: 1}\n: 2\n",
        "listen: &x [*x]\n",
        "a: &a\n  b: *a\n",
        "!!python/object:os.system {}\n",
        "store: !!binary aGVsbG8=\n",
        "listen: !!timestamp 2001-12-14\n",
        "%YAML 9.9\n---\na: 1\n",
        "--- 1\n--- 2\n",
        "a: [1, 2\n",
        "\t- tab\n",
        "defaults: {interval: 1s, interval: 2s}\n",
        "integrations: {0: {id: x}}\n",
        "integrations:\n  - !!set {a, b}\n",
        "api: {tokens: [{name: 1, token: 2}]}\n",
        "alerting: {pagerduty: {routing_key: {env: X}}}\n",
        "[" * 2000,
    ]
)
documents = st.one_of(
    known_shapes().map(dump),
    values.map(dump),
    raw_yaml,
    deep,
    st.text(max_size=200),
)


@contextlib.contextmanager
def config_file() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="healthd-fuzz-") as directory:
        yield Path(directory) / "healthd.yaml"


def validate(path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", "--config", str(path)])
    return code, out.getvalue(), err.getvalue()


def assert_exit_0_or_2(path: Path) -> None:
    code, out, err = validate(path)
    assert code in (0, 2), (code, out, err)
    if code == 2:
        assert err.startswith("healthd: config error: "), err
        assert "Traceback" not in err


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_validate_answers_any_text_with_exit_0_or_2(text: str) -> None:
    with config_file() as path:
        path.write_text(text, "utf-8", errors="surrogatepass")
        assert_exit_0_or_2(path)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_validate_answers_any_bytes_with_exit_0_or_2(data: bytes) -> None:
    with config_file() as path:
        path.write_bytes(data)
        assert_exit_0_or_2(path)


@pytest.mark.parametrize(
    "text",
    [
        "store: sqlite://\n",
        "store: postgres://db/healthd\n",
        "store: healthd.sqlite\n",
    ],
)
def test_validate_refuses_a_store_that_run_would_refuse(text: str, tmp_path: Path) -> None:
    path = tmp_path / "healthd.yaml"
    path.write_text(text)
    code, _, err = validate(path)
    assert code == 2
    assert err.startswith("healthd: config error: store: ")


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"\xff\xfelisten: x\n", "is not UTF-8 text (byte 0: 0xff)"),
        (b"[" * 3000, "nested too deeply"),
        (b"defaults: {interval: 99999999999999999999d}\n", "defaults.interval: invalid duration"),
        (b"defaults: {timeout: 10000000000000000000000}\n", "defaults.timeout: invalid duration"),
        (b"defaults: {interval: .inf}\n", "defaults.interval: invalid duration inf"),
    ],
)
def test_what_the_fuzz_found_is_a_config_error(data: bytes, said: str, tmp_path: Path) -> None:
    path = tmp_path / "healthd.yaml"
    path.write_bytes(data)
    code, _, err = validate(path)
    assert (code, err.count("\n")) == (2, 1)
    assert said in err
