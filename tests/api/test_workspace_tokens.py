"""Workspace tokens: JWTs the CRM signs, verified with PyJWT, each for one workspace.

Unit cases run `WorkspaceTokens` directly; the HTTP cases run the daemon and show that a
workspace token reads its own workspace and gets for another's id exactly the 404 of an
id that does not exist. A hypothesis property test mints tokens for random workspaces and
asks for every other workspace's ids and lists: nothing of another workspace comes back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from healthd import config as config_module
from healthd.api.workspace_tokens import WorkspaceTokens
from healthd.config import JwtConfig
from healthd.errors import ConfigError
from healthd.secrets import Secret
from healthd.sim.app import SimulatorThread
from tests.api.conftest import FLEET, DaemonThread, assert_problem, call, fleet_config, sync_call
from tests.conftest import running_daemon

SHARED = "a-shared-secret-of-at-least-32-bytes!!"
AUDIENCE = "healthd"
ED_PRIVATE = ed25519.Ed25519PrivateKey.generate()
RSA_PRIVATE = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(private: Any) -> str:
    return str(
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def claims(tenant: str = "acme", **extra: Any) -> dict[str, Any]:
    return {"tenant": tenant, "aud": AUDIENCE, "exp": int(time.time()) + 300, **extra}


def hs256(**extra: Any) -> str:
    return jwt.encode(claims(**extra), SHARED, algorithm="HS256")


def verifier(algorithm: str = "HS256", key: str = SHARED) -> WorkspaceTokens:
    return WorkspaceTokens(JwtConfig(algorithm=algorithm, key=Secret(key), audience=AUDIENCE))


def test_a_valid_hs256_token_is_its_workspace() -> None:
    principal = verifier().authenticate(hs256())

    assert principal is not None and principal.tenant == "acme" and not principal.is_admin


@pytest.mark.parametrize(
    ("algorithm", "private"), [("EdDSA", ED_PRIVATE), ("RS256", RSA_PRIVATE)], ids=str
)
def test_a_valid_token_signed_with_a_private_key_is_its_workspace(
    algorithm: str, private: Any
) -> None:
    token = jwt.encode(claims(), private, algorithm=algorithm)

    principal = verifier(algorithm, public_pem(private)).authenticate(token)

    assert principal is not None and principal.tenant == "acme"


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(hs256(exp=int(time.time()) - 3600), id="expired"),
        pytest.param(hs256(aud="another-service"), id="wrong audience"),
        pytest.param(
            jwt.encode(claims(), "another-secret-of-32-bytes-or-more!!", "HS256"), id="wrong key"
        ),
        pytest.param(jwt.encode(claims(), None, algorithm="none"), id="none algorithm"),
        pytest.param(jwt.encode(claims(), ED_PRIVATE, algorithm="EdDSA"), id="another algorithm"),
        pytest.param(
            jwt.encode({"aud": AUDIENCE, "exp": int(time.time()) + 60}, SHARED, "HS256"),
            id="no tenant",
        ),
        pytest.param(jwt.encode({"tenant": "acme", "aud": AUDIENCE}, SHARED, "HS256"), id="no exp"),
        pytest.param(hs256(tenant="../globex"), id="malformed tenant"),
        pytest.param("not.a.token", id="garbage"),
    ],
)
def test_a_token_that_does_not_verify_is_refused(token: str) -> None:
    assert verifier().authenticate(token) is None


def test_a_short_shared_secret_is_a_config_error_naming_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HEALTHD_TEST_SHORT", "only-20-bytes-long!!")
    with pytest.raises(ConfigError, match=r"api\.jwt\.key: an HS256 secret must be at least 32"):
        config_module.loads(
            "api:\n  jwt: {algorithm: HS256, key: 'env:HEALTHD_TEST_SHORT', audience: healthd}\n"
        )


def jwt_config(sim: SimulatorThread, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("HEALTHD_TEST_JWT_KEY", SHARED)
    doc = fleet_config(sim)
    doc["api"]["jwt"] = {
        "algorithm": "HS256",
        "key": "env:HEALTHD_TEST_JWT_KEY",
        "audience": AUDIENCE,
    }
    return doc


@pytest.mark.usefixtures("secrets_env")
async def test_over_http_another_workspaces_id_answers_as_an_unknown_one(
    sim: SimulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = hs256()
    async with running_daemon(jwt_config(sim, monkeypatch)) as d:
        own = await call(d.url, "GET", "/api/v1/integrations/bridge-acme1", token=token)
        other = await call(d.url, "GET", "/api/v1/integrations/bridge-globex1", token=token)
        unknown = await call(d.url, "GET", "/api/v1/integrations/bridge-nowhere1", token=token)
        expired = await call(
            d.url, "GET", "/api/v1/integrations", token=hs256(exp=int(time.time()) - 3600)
        )

    assert own.status == 200
    assert assert_problem(other, 404)["detail"].replace("globex", "X") == assert_problem(
        unknown, 404
    )["detail"].replace("nowhere", "X")
    assert_problem(expired, 401)


# -- the property: no token of workspace A reads anything of B ------------------------------

# The workspaces (`platform` is shared infrastructure, not one), two of them with nothing.
WORKSPACES = sorted(set(FLEET.values()) - {"platform"} | {"initech", "umbrella"})


@pytest.fixture(scope="module")
def jwt_daemon(
    sim_thread: SimulatorThread, module_env: pytest.MonkeyPatch
) -> Iterator[DaemonThread]:
    sim_thread.client().reset()
    doc = jwt_config(sim_thread, module_env)
    doc["api"]["check_rate_limit"] = 100_000
    with DaemonThread(doc) as running:
        yield running


PATHS = st.sampled_from(
    [
        "/api/v1/integrations",
        "/api/v1/integrations?tenant={other}",
        "/api/v1/integrations/{other_id}",
        "/api/v1/incidents",
        "/api/v1/incidents?open=true",
        "/api/v1/me",
    ]
)


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(
    mine=st.sampled_from(WORKSPACES),
    other=st.sampled_from(WORKSPACES),
    path=PATHS,
    ttl=st.integers(min_value=-600, max_value=600),
)
def test_no_token_of_one_workspace_reads_anything_of_another(
    jwt_daemon: DaemonThread, mine: str, other: str, path: str, ttl: int
) -> None:
    others = {iid for iid, tenant in FLEET.items() if tenant not in (mine, "platform")}
    other_ids = sorted({iid for iid, tenant in FLEET.items() if tenant == other} or {"none"})
    token = jwt.encode(claims(mine, exp=int(time.time()) + ttl), SHARED, algorithm="HS256")

    asked = path.format(other=other, other_id=other_ids[0])
    answer = sync_call(jwt_daemon.url, "GET", asked, token=token)
    # A 404 may repeat the id the caller itself named; no other id of B may appear.
    others -= {iid for iid in others if iid in asked and answer.status == 404}

    if ttl < -30:  # past the leeway
        assert answer.status == 401
    assert not [iid for iid in others if iid in answer.text]
    other_tenants = set(WORKSPACES) - {mine}
    if answer.status == 200 and "/me" not in path:
        assert not [
            t
            for t in other_tenants
            if f'"tenant": "{t}"' in answer.text or f'"tenant":"{t}"' in answer.text
        ]
