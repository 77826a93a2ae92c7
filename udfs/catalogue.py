"""Site catalogue: the YAML file under ``conf/`` loaded into frozen dataclasses.

Read once (at job start), validated field by field: a bad file fails with an error naming the
file, the site and the field, e.g.
``ValueError("sites.yaml: site 'ams': capacity_slots: must be a positive integer")``.

``GRD_SITES`` overrides the default path ``conf/sites.yaml``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SITES_PATH = REPO_ROOT / "conf" / "sites.yaml"
SITES_ENV = "GRD_SITES"


@dataclass(frozen=True)
class CoolingParams:
    """Parameters of :func:`udfs.cooling.pue` (see that module for the model and its sources).

    PUE = 1 + ``fixed_overhead`` + cooling fraction(T_eff, RH), where the cooling fraction is a
    free-cooling line below ``free_cooling_max_c``, a Carnot-fraction chiller above it, blended
    linearly over ``blend_width_c`` so that the curve has no jump.
    """

    fixed_overhead: float = 0.03  # UPS/distribution losses, lighting: fraction of IT power
    free_cooling_min_c: float = -4.0  # at or below: free-cooling floor
    free_cooling_max_c: float = 18.0  # above: chillers start to take over
    free_fraction_min: float = 0.02  # cooling kW / IT kW at free_cooling_min_c (PUE ~1.05)
    free_fraction_max: float = 0.14  # ... at free_cooling_max_c (PUE ~1.17)
    blend_width_c: float = 6.0  # partial economizer band: 18 -> 24 degC by default
    chiller_eta: float = 0.35  # fraction of the Carnot COP a real chiller reaches
    supply_c: float = 18.0  # chilled-water / supply-air temperature
    approach_c: float = 5.0  # condenser approach above outdoor temperature
    cop_min: float = 2.0
    cop_max: float = 10.0
    chiller_aux_fraction: float = 0.05  # pumps, towers, CRAH fans while on mechanical cooling
    humidity_ref_rh: float = 60.0  # RH (%) above which humidity starts to cost
    humidity_shift_c_per_rh: float = 0.1  # effective-temperature shift per RH point above ref
    dehumidification_fraction: float = 0.08  # extra cooling fraction at 100 % RH, full chiller


@dataclass(frozen=True)
class ThermalLimits:
    """Thermal derating: 1.0 up to ``derate_start_c``, then linear down to ``derate_floor``
    at ``derate_max_c`` and beyond (``derate_floor`` 0 means the site shuts down)."""

    derate_start_c: float = 35.0
    derate_max_c: float = 45.0
    derate_floor: float = 0.0


@dataclass(frozen=True)
class Site:
    site_id: str
    name: str
    region: str
    lat: float
    lon: float
    capacity_slots: int
    it_kw_per_slot: float
    offer_interval_min: int
    currency: str = "EUR"
    # Cost comparisons across sites are made in EUR: cost_in_eur = cost * fx_to_eur.
    fx_to_eur: float = 1.0
    fixed_cost_per_slot_hour: float = 0.0
    price_zone: str = ""
    price_synthetic: bool = False
    climate: str = ""
    cooling: CoolingParams = field(default_factory=CoolingParams)
    thermal: ThermalLimits = field(default_factory=ThermalLimits)

    @property
    def offer_interval_ms(self) -> int:
        return self.offer_interval_min * 60_000


@dataclass(frozen=True)
class Catalogue:
    sites: tuple[Site, ...]
    # The operator's own region: where "local-only" runs jobs that name no site.
    home_region: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {s.site_id: s for s in self.sites})

    def __iter__(self) -> Iterator[Site]:
        return iter(self.sites)

    def __len__(self) -> int:
        return len(self.sites)

    def __contains__(self, site_id: object) -> bool:
        return site_id in self._by_id  # type: ignore[attr-defined]

    def get(self, site_id: str) -> Site | None:
        return self._by_id.get(site_id)  # type: ignore[attr-defined]

    def __getitem__(self, site_id: str) -> Site:
        site = self.get(site_id)
        if site is None:
            raise KeyError(f"unknown site_id {site_id!r}")
        return site

    @property
    def site_ids(self) -> tuple[str, ...]:
        return tuple(s.site_id for s in self.sites)


def sites_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The catalogue path: explicit argument, else ``$GRD_SITES``, else conf/sites.yaml."""
    if path:
        return Path(path)
    env = os.environ.get(SITES_ENV)
    return Path(env) if env else DEFAULT_SITES_PATH


def load_catalogue(path: str | os.PathLike[str] | None = None) -> Catalogue:
    """Read and validate the catalogue file (see :func:`sites_path` for which file)."""
    p = sites_path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{p}: cannot read site catalogue: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{p.name}: not valid YAML: {exc}") from None
    return parse_catalogue(data, source=p.name)


# --- validation -------------------------------------------------------------------------------


def _num(
    where: str,
    name: str,
    value: Any,
    *,
    lo: float | None = None,
    lo_open: bool = False,
    hi: float | None = None,
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}: {name}: must be a finite number, got {value!r}")
    v = float(value)
    if lo is not None and (v <= lo if lo_open else v < lo):
        bound = f"> {lo:g}" if lo_open else f">= {lo:g}"
        raise ValueError(f"{where}: {name}: must be {bound}, got {value!r}")
    if hi is not None and v > hi:
        raise ValueError(f"{where}: {name}: must be <= {hi:g}, got {value!r}")
    return v


def _pos_int(where: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{where}: {name}: must be a positive integer, got {value!r}")
    return value


def _text(where: str, name: str, value: Any, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValueError(f"{where}: {name}: must be a non-empty string, got {value!r}")
    return value.strip()


def _nested(where: str, name: str, raw: Any, cls: type) -> Any:
    """Build a small all-float dataclass from a mapping, rejecting unknown keys."""
    if raw is None:
        return cls()
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: {name}: must be a mapping")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{where}: {name}.{unknown[0]}: unknown field (known: {sorted(known)})")
    values = {k: _num(where, f"{name}.{k}", v) for k, v in raw.items()}
    return cls(**values)


def _check_cooling(where: str, c: CoolingParams) -> None:
    def bad(f: str, why: str) -> ValueError:
        return ValueError(f"{where}: cooling.{f}: {why}")

    for f in (
        "fixed_overhead",
        "free_fraction_min",
        "free_fraction_max",
        "chiller_aux_fraction",
        "humidity_shift_c_per_rh",
        "dehumidification_fraction",
        "approach_c",
    ):
        if getattr(c, f) < 0:
            raise bad(f, "must be >= 0")
    if c.free_cooling_max_c <= c.free_cooling_min_c:
        raise bad("free_cooling_max_c", "must be above free_cooling_min_c")
    if c.free_fraction_max < c.free_fraction_min:
        raise bad("free_fraction_max", "must be >= free_fraction_min (PUE must not fall with T)")
    if c.blend_width_c <= 0:
        raise bad("blend_width_c", "must be > 0 (no jump between regimes)")
    if not 0 < c.chiller_eta <= 1:
        raise bad("chiller_eta", "must be in (0, 1] (a fraction of the Carnot COP)")
    if not 0 < c.cop_min <= c.cop_max:
        raise bad("cop_min", "must satisfy 0 < cop_min <= cop_max")
    if not 0 <= c.humidity_ref_rh <= 100:
        raise bad("humidity_ref_rh", "must be in [0, 100]")
    if c.supply_c <= -273.15:
        raise bad("supply_c", "must be above absolute zero")


def _check_thermal(where: str, t: ThermalLimits) -> None:
    if t.derate_max_c <= t.derate_start_c:
        raise ValueError(f"{where}: thermal.derate_max_c: must be above thermal.derate_start_c")
    if not 0 <= t.derate_floor <= 1:
        raise ValueError(f"{where}: thermal.derate_floor: must be in [0, 1]")


_SITE_KEYS = {f.name for f in fields(Site)}


def parse_site(raw: Any, *, source: str = "sites.yaml", index: int = 0) -> Site:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{source}: site #{index}: must be a mapping")
    sid = raw.get("site_id")
    if not isinstance(sid, str) or not sid.strip():
        raise ValueError(f"{source}: site #{index}: site_id: must be a non-empty string")
    where = f"{source}: site {sid!r}"
    unknown = sorted(set(raw) - _SITE_KEYS)
    if unknown:
        raise ValueError(f"{where}: {unknown[0]}: unknown field")
    for req in (
        "name",
        "region",
        "lat",
        "lon",
        "capacity_slots",
        "it_kw_per_slot",
        "offer_interval_min",
    ):
        if req not in raw:
            raise ValueError(f"{where}: {req}: missing")
    currency = _text(where, "currency", raw.get("currency", "EUR"))
    if len(currency) != 3 or not currency.isalpha():
        raise ValueError(f"{where}: currency: must be a 3-letter code, got {currency!r}")
    site = Site(
        site_id=sid.strip(),
        name=_text(where, "name", raw["name"]),
        region=_text(where, "region", raw["region"]),
        lat=_num(where, "lat", raw["lat"], lo=-90, hi=90),
        lon=_num(where, "lon", raw["lon"], lo=-180, hi=180),
        capacity_slots=_pos_int(where, "capacity_slots", raw["capacity_slots"]),
        it_kw_per_slot=_num(where, "it_kw_per_slot", raw["it_kw_per_slot"], lo=0, lo_open=True),
        offer_interval_min=_pos_int(where, "offer_interval_min", raw["offer_interval_min"]),
        currency=currency.upper(),
        fx_to_eur=_num(where, "fx_to_eur", raw.get("fx_to_eur", 1.0), lo=0, lo_open=True),
        fixed_cost_per_slot_hour=_num(
            where, "fixed_cost_per_slot_hour", raw.get("fixed_cost_per_slot_hour", 0.0), lo=0
        ),
        price_zone=_text(where, "price_zone", raw.get("price_zone"), required=False),
        price_synthetic=bool(raw.get("price_synthetic", False)),
        climate=_text(where, "climate", raw.get("climate"), required=False),
        cooling=_nested(where, "cooling", raw.get("cooling"), CoolingParams),
        thermal=_nested(where, "thermal", raw.get("thermal"), ThermalLimits),
    )
    _check_cooling(where, site.cooling)
    _check_thermal(where, site.thermal)
    return site


def parse_catalogue(data: Any, *, source: str = "sites.yaml") -> Catalogue:
    """Validate an already-parsed YAML document ``{sites: [...], home_region: ...}``.

    ``defaults.cooling`` / ``defaults.thermal`` (optional) are merged under every site's own.
    """
    if not isinstance(data, Mapping) or "sites" not in data:
        raise ValueError(f"{source}: top level must be a mapping with a 'sites' list")
    raw_sites = data["sites"]
    if not isinstance(raw_sites, list) or not raw_sites:
        raise ValueError(f"{source}: sites: must be a non-empty list")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        raise ValueError(f"{source}: defaults: must be a mapping")
    sites: list[Site] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_sites):
        if isinstance(raw, Mapping):
            raw = dict(raw)
            for key in ("cooling", "thermal"):
                if key in defaults:
                    merged = dict(defaults[key] or {})
                    merged.update(raw.get(key) or {})
                    raw[key] = merged
        site = parse_site(raw, source=source, index=i)
        if site.site_id in seen:
            raise ValueError(f"{source}: site {site.site_id!r}: site_id: duplicate")
        seen.add(site.site_id)
        sites.append(site)
    home = data.get("home_region", sites[0].region)
    home = _text(source, "home_region", home)
    if home not in {s.region for s in sites}:
        raise ValueError(f"{source}: home_region: {home!r} is not the region of any site")
    return Catalogue(sites=tuple(sites), home_region=home)
