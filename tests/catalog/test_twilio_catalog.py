"""The Twilio catalogue covers the product's help pages and Twilio's messaging dictionary."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from healthd.catalog import Catalog, parse
from healthd.model import Category
from tests._shared import missing, shared_file, shared_path
from tests.conftest import REPO

CATALOG_FILE = REPO / "healthd" / "catalog" / "twilio.yaml"
SEEDS = shared_path("seeds")

MESSAGING_PRODUCTS = {"Programmable SMS", "Programmable Messaging"}
# Platform codes a messaging API call can return (the file header lists the same).
PLATFORM_CODES = {10001, 11200, 20001, 20003, 20005, 20008, 20404, 20429, 20500, 20503, 21211}


def _seed(prefix: str) -> str:
    found = sorted(SEEDS.glob(f"{prefix}_*.txt"))
    if not found:
        missing(f"seed {prefix} is not in {SEEDS}")
    return found[0].read_text("utf-8")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog(parse(yaml.safe_load(CATALOG_FILE.read_text("utf-8")), CATALOG_FILE.name))


@pytest.fixture(scope="module")
def dictionary() -> list[dict[str, Any]]:
    dictionary = shared_file("specs", "twilio", "twilio-error-codes.json")
    data: list[dict[str, Any]] = json.loads(dictionary.read_text("utf-8"))
    return data


def seed_002_table_codes() -> list[str]:
    """The first column of seed 002's code table (`11200 | HTTP retrieval failure ... |`)."""
    if not any(SEEDS.glob("002_*.txt")):
        return []
    return re.findall(r"^(\d{5}) \|", _seed("002"), flags=re.MULTILINE)


def codes_mentioned(text: str) -> set[str]:
    """Five-digit Twilio codes and the HTTP statuses 401/403 the seeds cite as codes."""
    found = set(re.findall(r"\b([1-6]\d{4})\b", text))
    found |= set(re.findall(r"\b(40[13])\b -", text))
    return found


def is_messaging_code(entry: dict[str, Any]) -> bool:
    """The selection rule in twilio.yaml's header."""
    code, product = entry["code"], entry["product"]
    if product in MESSAGING_PRODUCTS:
        return True
    if product is None and (21601 <= code <= 21799 or 30001 <= code <= 30099):
        return True
    return code in PLATFORM_CODES


def test_the_catalogue_file_loads(catalog: Catalog) -> None:
    assert catalog.providers() == ["twilio"]
    assert len(catalog) > 250


def test_seed_002_table_is_parsed_in_full() -> None:
    _seed("002")  # without the seed: a skip, or under CI a failure, not an empty table
    codes = seed_002_table_codes()
    assert len(codes) == 24
    assert codes[0] == "11200" and codes[-1] == "30037"


@pytest.mark.parametrize("code", seed_002_table_codes())
def test_every_code_of_seed_002_is_in_the_catalogue(catalog: Catalog, code: str) -> None:
    assert catalog.get("twilio", code) is not None


@pytest.mark.parametrize("seed", ["000", "001", "004"])
def test_every_code_of_the_other_seeds_is_in_the_catalogue(catalog: Catalog, seed: str) -> None:
    missing = sorted(c for c in codes_mentioned(_seed(seed)) if catalog.get("twilio", c) is None)
    assert missing == []


def test_the_seed_code_scan_finds_the_known_codes() -> None:
    assert {"21610", "21408", "21211", "30007", "401", "403"} <= codes_mentioned(_seed("000"))
    assert {"21610", "21612", "21703"} <= codes_mentioned(_seed("001"))


def test_every_messaging_code_of_the_dictionary_is_in_the_catalogue(
    catalog: Catalog, dictionary: list[dict[str, Any]]
) -> None:
    wanted = {str(e["code"]) for e in dictionary if is_messaging_code(e)}
    missing = sorted(c for c in wanted if catalog.get("twilio", c) is None)
    assert missing == []


@pytest.mark.parametrize(
    ("low", "high"), [(20003, 20003), (20429, 20429), (21211, 21717), (30001, 30036)]
)
def test_the_named_ranges_are_covered_for_messaging(
    catalog: Catalog, dictionary: list[dict[str, Any]], low: int, high: int
) -> None:
    wanted = [e for e in dictionary if low <= e["code"] <= high and is_messaging_code(e)]
    assert wanted, "the range has messaging codes in the dictionary"
    assert [e["code"] for e in wanted if catalog.get("twilio", e["code"]) is None] == []


@pytest.mark.parametrize(
    ("code", "category"),
    [
        ("21610", "recipient"),
        ("21211", "recipient"),
        ("21614", "recipient"),
        ("21635", "recipient"),
        ("30006", "recipient"),
        ("30005", "recipient"),
        ("30007", "content"),
        ("21606", "sender_config"),
        ("21661", "sender_config"),
        ("21408", "sender_config"),
        ("30032", "sender_config"),
        ("30033", "sender_config"),
        ("30034", "sender_config"),
        ("401", "account"),
        ("403", "account"),
        ("20003", "account"),
        ("30002", "account"),
        ("30037", "account"),
        ("500", "provider"),
        ("503", "provider"),
        ("twilio.timeout", "provider"),
        ("twilio.server_error", "provider"),
        ("twilio.platform_incident", "provider"),
        ("30008", "unknown"),
    ],
)
def test_design_examples_have_their_category(catalog: Catalog, code: str, category: str) -> None:
    assert catalog.lookup("twilio", code).category is Category(category)


def test_recipient_and_content_codes_never_count_against_health(catalog: Catalog) -> None:
    for code in ("21610", "21211", "30006", "30007"):
        assert not catalog.lookup("twilio", code).counts_against_health


def test_healthd_codes_used_by_the_probe_are_present(catalog: Catalog) -> None:
    probe_source = (REPO / "probes" / "twilio.py").read_text("utf-8")
    used = set(re.findall(r'"(twilio\.[a-z_]+)"', probe_source)) - {"twilio.rest", "twilio.base"}
    used |= {f"twilio.{c}" for c in ("timeout", "unreachable", "bad_response")}
    used |= {f"twilio.{c}" for c in ("platform_operational", "platform_incident")}
    used.add("twilio.statuspage_unavailable")
    assert sorted(c for c in used if catalog.get("twilio", c) is None) == []


def test_auth_invalid_says_reconnect_the_integration(catalog: Catalog) -> None:
    assert "Reconnect the integration" in catalog.lookup("twilio", "twilio.auth_invalid").fix


def _normal(text: str | None) -> str:
    return " ".join((text or "").lower().split()).rstrip(".")


def test_meaning_and_fix_are_written_in_our_own_words(
    catalog: Catalog, dictionary: list[dict[str, Any]]
) -> None:
    theirs: set[str] = set()
    for e in dictionary:
        for key in ("message", "secondary_message", "description", "causes", "solutions", "docs"):
            value = e.get(key)
            if isinstance(value, str) and len(value) > 30:
                theirs.add(_normal(value))
    copied = [
        entry.code
        for entry in catalog
        if _normal(entry.meaning) in theirs or _normal(entry.fix) in theirs
    ]
    assert copied == []


def test_every_entry_has_a_title_meaning_and_fix(catalog: Catalog) -> None:
    empty = [e.code for e in catalog if not (e.title and e.meaning and e.fix)]
    assert empty == []


def _words(text: str | None) -> list[str]:
    return re.findall(r"[a-z0-9']+", (text or "").lower())


def _runs(text: str | None, n: int = 8) -> set[tuple[str, ...]]:
    w = _words(text)
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def test_no_eight_word_run_is_taken_from_the_dictionary(
    catalog: Catalog, dictionary: list[dict[str, Any]]
) -> None:
    """Runs the seed pages share with the dictionary are the product's words and allowed."""
    theirs: set[tuple[str, ...]] = set()
    for e in dictionary:
        for key in ("message", "secondary_message", "description", "causes", "solutions", "docs"):
            value = e.get(key)
            if isinstance(value, str):
                theirs |= _runs(value)
    product_words: set[tuple[str, ...]] = set()
    for seed in SEEDS.glob("*.txt"):
        product_words |= _runs(seed.read_text("utf-8"))
    borrowed = {
        entry.code: sorted(" ".join(r) for r in (_runs(entry.meaning) | _runs(entry.fix)) & theirs)
        for entry in catalog
    }
    assert {
        c: r for c, r in borrowed.items() if set(map(tuple, map(str.split, r))) - product_words
    } == {}


# Codes Twilio published after the 2023 dictionary snapshot (issue 14). Those checked against
# Twilio's error pages say what they mean and whose problem they are; the others say only
# what their block means, point at Twilio's page, and count against nothing.
CHECKED_CODES = {
    "30036": Category.SENDER_CONFIG,  # validity period expired in the queue
    "30038": Category.CONTENT,  # an inbound one-time passcode filtered
    "30039": Category.CONTENT,  # an inbound message filtered to prevent a loop
    "30042": Category.SENDER_CONFIG,  # a generic or non-compliant Sender ID
    "30044": Category.ACCOUNT,  # a trial account's message too long
    "30453": Category.RECIPIENT,  # SMS Pumping Protection blocked the destination
}
UNCHECKED_CODES = ["30040", "30041", "30043", "30451"]


@pytest.mark.parametrize(("code", "category"), sorted(CHECKED_CODES.items()))
def test_newer_codes_checked_against_twilio_say_whose_problem_they_are(
    catalog: Catalog, code: str, category: Category
) -> None:
    entry = catalog.lookup("twilio", code)
    assert entry.category is category
    assert "not in healthd's dictionary snapshot" not in entry.title


@pytest.mark.parametrize("code", UNCHECKED_CODES)
def test_newer_codes_not_yet_checked_point_at_twilio_and_count_against_nothing(
    catalog: Catalog, code: str
) -> None:
    entry = catalog.lookup("twilio", code)
    assert f"twilio.com/docs/api/errors/{code}" in entry.fix
    assert entry.category is Category.UNKNOWN and not entry.counts_against_health
