"""Site catalogue loading and validation."""

from __future__ import annotations

import copy

import pytest
import yaml

from udfs.catalogue import DEFAULT_SITES_PATH, load_catalogue, parse_catalogue


def _raw() -> dict:
    return yaml.safe_load(DEFAULT_SITES_PATH.read_text())


def test_default_catalogue_has_the_five_sample_sites() -> None:
    cat = load_catalogue(DEFAULT_SITES_PATH)
    assert cat.site_ids == ("ams", "trn", "sto", "chi", "tus")
    assert cat["ams"].region == "eu-west" and cat["ams"].offer_interval_ms == 3_600_000
    assert cat["chi"].offer_interval_min == 5 and cat["chi"].currency == "USD"
    assert cat["tus"].price_synthetic and not cat["ams"].price_synthetic
    assert (cat["sto"].lat, cat["sto"].lon) == (59.33, 18.07)
    assert cat.home_region == "eu-west"
    assert all(200 <= s.capacity_slots <= 600 and 0.3 <= s.it_kw_per_slot <= 0.5 for s in cat)
    assert cat["sto"].thermal.derate_start_c == 32.0  # per-site override
    assert cat["ams"].thermal.derate_start_c == 35.0  # from defaults


def test_env_var_overrides_path(tmp_path, monkeypatch) -> None:
    raw = _raw()
    raw["sites"] = raw["sites"][:1]
    p = tmp_path / "one.yaml"
    p.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("GRD_SITES", str(p))
    assert load_catalogue().site_ids == ("ams",)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("capacity_slots", 0, "site 'ams': capacity_slots: must be a positive integer"),
        ("capacity_slots", 2.5, "site 'ams': capacity_slots: must be a positive integer"),
        ("it_kw_per_slot", -0.1, "site 'ams': it_kw_per_slot: must be > 0"),
        ("lat", 91, "site 'ams': lat: must be <= 90"),
        ("lon", float("nan"), "site 'ams': lon: must be a finite number"),
        ("currency", "EURO", "site 'ams': currency"),
        ("bogus", 1, "site 'ams': bogus: unknown field"),
        ("cooling", {"chiller_eta": 2}, "site 'ams': cooling.chiller_eta"),
        ("cooling", {"nope": 1}, "site 'ams': cooling.nope: unknown field"),
        ("thermal", {"derate_start_c": 50, "derate_max_c": 40}, "site 'ams': thermal.derate_max_c"),
    ],
)
def test_bad_field_is_named(field: str, value: object, message: str) -> None:
    raw = _raw()
    raw["sites"][0][field] = value
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_catalogue(raw)


def test_missing_field_and_duplicates() -> None:
    raw = _raw()
    del raw["sites"][1]["region"]
    with pytest.raises(ValueError, match="sites.yaml: site 'trn': region: missing"):
        parse_catalogue(raw)
    raw = _raw()
    raw["sites"].append(copy.deepcopy(raw["sites"][0]))
    with pytest.raises(ValueError, match="site 'ams': site_id: duplicate"):
        parse_catalogue(raw)
    with pytest.raises(ValueError, match="sites"):
        parse_catalogue({"sites": []})


def test_unreadable_file(tmp_path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        load_catalogue(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sites: [")
    with pytest.raises(ValueError, match="bad.yaml: not valid YAML"):
        load_catalogue(bad)
