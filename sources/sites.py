"""Site ids and coordinates for the generators and pollers: from the catalogue (GRD_SITES, default
conf/sites.yaml, owned by udfs/) when it exists, else the five sites of the sample data."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sources.cli import UserError

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class SiteRef:
    site_id: str
    lat: float | None = None
    lon: float | None = None


def catalogue_path() -> Path:
    return Path(os.environ.get("GRD_SITES") or REPO / "conf" / "sites.yaml")


def _entries(doc: object) -> list[dict]:
    """Accept ``sites: [{site_id|id: ...}]``, ``sites: {id: {...}}``, or the same at top level."""
    if isinstance(doc, dict) and "sites" in doc:
        doc = doc["sites"]
    if isinstance(doc, list):
        return [e for e in doc if isinstance(e, dict)]
    if isinstance(doc, dict):
        return [{"site_id": k, **(v if isinstance(v, dict) else {})} for k, v in doc.items()]
    return []


def load_sites(path: Path | None = None) -> list[SiteRef]:
    path = path or catalogue_path()
    if path.exists():
        import yaml

        try:
            doc = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise UserError(f"{path}: cannot read the site catalogue ({str(exc).splitlines()[0]})") from None
        refs = []
        for entry in _entries(doc):
            sid = entry.get("site_id") or entry.get("id")
            if isinstance(sid, str) and sid:
                lat, lon = entry.get("lat", entry.get("latitude")), entry.get("lon", entry.get("longitude"))
                refs.append(
                    SiteRef(sid, float(lat) if lat is not None else None, float(lon) if lon is not None else None)
                )
        if refs:
            return refs
        if os.environ.get("GRD_SITES"):
            raise UserError(f"{path}: no sites found in the catalogue")
    from sources.sample_data import SITES

    return [SiteRef(s.site_id, s.lat, s.lon) for s in SITES.values()]


def site_ids(path: Path | None = None) -> list[str]:
    return [s.site_id for s in load_sites(path)]
