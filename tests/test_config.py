"""Config: every rejection names its key; the CLI exits 2 and nothing starts.

Each file in `tests/config/invalid/` is one rejection; its first line says what the
error must contain (`# expect: <text>`).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from healthd import config
from healthd.errors import ConfigError
from healthd.secrets import Secret
from healthd.store import SQLiteStore, open_store
from tests.conftest import REPO

INVALID = sorted((Path(__file__).parent / "config" / "invalid").glob("*.yaml"))
VALID = """
defaults: {interval: 30s, timeout: 5s}
alerting:
  pagerduty: {routing_key: env:HEALTHD_TEST_ROUTING_KEY}
  rules: {bridge_unreachable: {page_after: 15m}}
integrations:
  - {id: bridge-dc1, provider: imessage_bridge, tenant: platform,
     credentials: {password: env:HEALTHD_TEST_BRIDGE_PASSWORD}}
  - {id: bridge-dc2, provider: imessage_bridge, tenant: platform, page_after: 5m,
     base_url: "http://10.1.2.3:1234/", credentials: {password: env:HEALTHD_TEST_BRIDGE_PASSWORD}}
"""


def expected(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} needs an '# expect:' first line"
    return first.removeprefix("# expect: ")


@pytest.mark.usefixtures("secrets_env")
@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_config_is_rejected_naming_the_key(path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert expected(path) in str(info.value)


@pytest.mark.usefixtures("secrets_env")
def test_valid_config_resolves_defaults_and_overrides() -> None:
    cfg = config.loads(VALID)
    dc1, dc2 = cfg.integrations
    assert dc1.interval == timedelta(seconds=30) and dc1.timeout == timedelta(seconds=5)
    assert dc1.thresholds.page_after == timedelta(minutes=15)
    assert dc2.thresholds.page_after == timedelta(minutes=5)
    assert dc2.base_url == "http://10.1.2.3:1234"
    assert isinstance(dc1.credentials["password"], Secret)
    assert cfg.listen == ("127.0.0.1", 9477)


@pytest.mark.usefixtures("secrets_env")
def test_a_config_written_as_json_is_the_config_its_yaml_is() -> None:
    as_json = json.dumps(yaml.safe_load(VALID), indent=1)
    assert config.loads(as_json) == config.loads(VALID)


@pytest.mark.usefixtures("secrets_env")
def test_a_document_that_is_not_quite_json_is_read_as_yaml() -> None:
    # A YAML flow mapping (unquoted keys), and NaN, which YAML reads as a string.
    flow = "{defaults: {interval: 30s}, integrations: []}"
    assert config.loads(flow).defaults.interval == timedelta(seconds=30)
    with pytest.raises(ConfigError, match="defaults.interval: invalid duration 'NaN'"):
        config.loads('{"defaults": {"interval": NaN}}')


@pytest.mark.usefixtures("secrets_env")
def test_a_zero_page_after_and_jitter_are_honoured_not_replaced_by_defaults() -> None:
    cfg = config.loads(
        """
defaults: {jitter: 0s}
alerting: {rules: {bridge_unreachable: {page_after: 15m}}}
integrations:
  - {id: b1, provider: imessage_bridge, tenant: platform, page_after: 0s,
     credentials: {password: env:HEALTHD_TEST_BRIDGE_PASSWORD}}
"""
    )
    assert cfg.integrations[0].thresholds.page_after == timedelta(0)
    assert cfg.defaults.jitter == timedelta(0)


@pytest.mark.usefixtures("secrets_env")
def test_listen_flag_overrides_the_file() -> None:
    assert config.loads(VALID, listen="0.0.0.0:9999").listen == ("0.0.0.0", 9999)


@pytest.mark.usefixtures("secrets_env")
def test_secret_value_never_appears_in_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEALTHD_TEST_SHORT", "tiny-secret")
    doc = "api: {tokens: [{name: x, role: admin, token: env:HEALTHD_TEST_SHORT}]}"
    with pytest.raises(ConfigError) as info:
        config.loads(doc)
    assert "tiny-secret" not in str(info.value)
    assert "api.tokens[0].token" in str(info.value)


def test_the_readme_config_example_names_an_absolute_sqlite_file() -> None:
    section = (REPO / "README.md").read_text().split("## Configuration", 1)[1]
    example = yaml.safe_load(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    store = open_store(example["store"])
    assert isinstance(store, SQLiteStore) and str(store.path) == "/var/lib/healthd/healthd.db"


def healthd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "healthd", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=env,
    )


@pytest.mark.parametrize("command", ["validate", "check", "run"])
def test_cli_exits_2_on_a_bad_config_naming_the_key(command: str) -> None:
    bad = Path(__file__).parent / "config" / "invalid" / "bad_duration.yaml"
    proc = healthd(command, "--config", str(bad))
    assert proc.returncode == 2
    assert "integrations[2].page_after: invalid duration '10 minutes'" in proc.stderr


def test_run_with_a_bad_config_starts_nothing(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"listen: 127.0.0.1:{port}\nstore: sqlite:///{tmp_path}/h.db\nfoo: 1\n")
    proc = healthd("run", "--config", str(bad))
    assert proc.returncode == 2
    assert "foo: unknown key" in proc.stderr
    assert not (tmp_path / "h.db").exists()


def test_validate_exits_0_for_a_good_config(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(VALID)
    env = {
        **dict(__import__("os").environ),
        "HEALTHD_TEST_ROUTING_KEY": "R" * 32,
        "HEALTHD_TEST_BRIDGE_PASSWORD": "pw",
    }
    proc = healthd("validate", "--config", str(good), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "2 integrations" in proc.stdout


def test_explain_prints_meaning_and_fix_and_exits_1_for_unknown_codes() -> None:
    known = healthd("explain", "imessage_bridge", "bridge.unreachable")
    unknown = healthd("explain", "imessage_bridge", "no.such.code")
    assert known.returncode == 0 and "fix:" in known.stdout
    assert unknown.returncode == 1 and "no catalogue entry" in unknown.stderr
