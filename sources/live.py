"""Live pollers: ComEd's 5-minute price feed and Open-Meteo current weather into the prices and
weather topics.

    python -m sources.live [--interval 60] [--once] [--comed-site chi] [--weather-sites ams,chi]
                           [--comed-url URL] [--open-meteo-url URL]

- ComEd (``https://hourlypricing.comed.com/api?type=5minutefeed``): a JSON list of
  ``{"millisUTC": "...", "price": "..."}`` (cents/kWh, newest first). Each 5-minute price becomes
  an offer for ``--comed-site`` valid for 5 minutes from ``millisUTC``, in $/MWh (cents/kWh x 10),
  ``"source": "comed-5min"``. The first poll publishes the newest ``--backfill`` prices; later polls
  only prices newer than the last published one, so a repeated poll publishes nothing.
- Open-Meteo (``https://api.open-meteo.com/v1/forecast``, ``current=temperature_2m,relative_humidity_2m``,
  GMT): one observation per site per new ``current.time``; the same time again is not republished.
- HTTP: a timeout per request; connection errors, timeouts, 429 and 5xx are retried with
  exponential backoff; what still fails is reported on stderr as one line and the poller goes on.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sources import producer as P
from sources.cli import (
    Parser,
    UserError,
    add_kafka_args,
    csv_list,
    fail,
    non_negative_int,
    positive_float,
    raise_interrupt,
)
from sources.dataset import event_field
from sources.sites import SiteRef, load_sites
from udfs import topics as T
from udfs.timeutil import format_ts, parse_ts_ms

COMED_URL = "https://hourlypricing.comed.com/api?type=5minutefeed"
OPEN_METEO_URL = "https://api.open-meteo.com/v1/forecast"
FIVE_MIN_MS = 300_000


class PollError(Exception):
    """A poll that failed after its retries (reported, never fatal)."""


@dataclass(frozen=True)
class HttpPolicy:
    timeout_s: float = 10.0
    retries: int = 3  # extra attempts after the first
    backoff_s: float = 1.0  # wait before retry n: backoff_s * 2**(n-1)


def fetch_json(session, url: str, params: dict | None, policy: HttpPolicy, sleep: Callable[[float], None] = time.sleep):
    """GET and decode JSON, retrying transient failures. Raises PollError with one line."""
    import requests

    last = ""
    for attempt in range(policy.retries + 1):
        if attempt:
            sleep(policy.backoff_s * 2 ** (attempt - 1))
        try:
            response = session.get(url, params=params, timeout=policy.timeout_s)
        except requests.RequestException as exc:
            last = f"{type(exc).__name__}: {exc}"
            continue
        if response.status_code == 429 or response.status_code >= 500:
            last = f"HTTP {response.status_code}"
            continue
        if response.status_code != 200:
            raise PollError(f"HTTP {response.status_code} from {response.url}")
        try:
            return response.json()
        except ValueError:
            last = f"not JSON ({response.text[:60]!r})"
            continue
    raise PollError(f"{url}: {last} after {policy.retries + 1} attempts")


@dataclass
class PollStats:
    polls: int = 0
    failures: int = 0
    published: int = 0
    unchanged: int = 0  # polls (or sites) that brought nothing new
    invalid: int = 0  # entries of a response that could not be used
    last_error: str = ""


@dataclass
class ComEdPoller:
    url: str
    site_id: str
    backfill: int = 1
    last_ms: int | None = None
    stats: PollStats = field(default_factory=PollStats)
    name: str = "comed"

    def parse(self, payload: object) -> list[tuple[int, float]]:
        """(millisUTC, cents/kWh) pairs, oldest first; unusable entries are counted and skipped."""
        if not isinstance(payload, list):
            raise PollError(f"{self.name}: expected a JSON list, got {type(payload).__name__}")
        out = {}
        for item in payload:
            try:
                ms = int(item["millisUTC"])
                cents = float(item["price"])
                if cents != cents or abs(cents) > 1e5:
                    raise ValueError(cents)
            except (KeyError, TypeError, ValueError):
                self.stats.invalid += 1
                continue
            out[ms] = cents
        return sorted(out.items())

    def records(self, payload: object) -> list[dict]:
        """The offers to publish for one response (updates the de-duplication state)."""
        points = self.parse(payload)
        if self.last_ms is None:
            fresh = points[-self.backfill :] if self.backfill else []
        else:
            fresh = [p for p in points if p[0] > self.last_ms]
        if points:
            self.last_ms = max(self.last_ms or points[-1][0], points[-1][0])
        return [
            {
                "site_id": self.site_id,
                "price_per_mwh": round(cents * 10, 3),
                "valid_from": format_ts(ms),
                "valid_to": format_ts(ms + FIVE_MIN_MS),
                "currency": "USD",
                "source": "comed-5min",
            }
            for ms, cents in fresh
        ]

    def poll(self, session, policy: HttpPolicy, sleep=time.sleep) -> list[tuple[str, dict]]:
        return [(T.PRICES, r) for r in self.records(fetch_json(session, self.url, None, policy, sleep))]


@dataclass
class OpenMeteoPoller:
    url: str
    sites: list[SiteRef]
    last: dict[str, int] = field(default_factory=dict)
    stats: PollStats = field(default_factory=PollStats)
    name: str = "open-meteo"

    def record(self, site: SiteRef, payload: object) -> dict | None:
        """The observation to publish for one site's response, or None when not new."""
        try:
            current = payload["current"]  # type: ignore[index]
            stamp = current["time"]
            temp = float(current["temperature_2m"])
            rh = float(current["relative_humidity_2m"])
            offset_s = int(payload.get("utc_offset_seconds", 0))  # type: ignore[union-attr]
            ms = parse_ts_ms(stamp if stamp.endswith("Z") or "+" in stamp[10:] else stamp + "Z", "current.time")
            ms -= offset_s * 1000
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self.stats.invalid += 1
            raise PollError(f"{self.name} {site.site_id}: unusable response ({exc})") from None
        if self.last.get(site.site_id) == ms:
            return None
        self.last[site.site_id] = ms
        return {
            "site_id": site.site_id,
            "observed_at": format_ts(ms),
            "temp_c": temp,
            "rel_humidity": min(100.0, max(0.0, rh)),
            "source": "open-meteo",
        }

    def poll(self, session, policy: HttpPolicy, sleep=time.sleep) -> list[tuple[str, dict]]:
        out = []
        errors = []
        for site in self.sites:
            params = {
                "latitude": site.lat,
                "longitude": site.lon,
                "timezone": "GMT",
                "current": "temperature_2m,relative_humidity_2m",
            }
            try:
                rec = self.record(site, fetch_json(session, self.url, params, policy, sleep))
            except PollError as exc:
                errors.append(str(exc))
                continue
            if rec is not None:
                out.append((T.WEATHER, rec))
        if errors and not out and len(errors) == len(self.sites):
            raise PollError("; ".join(errors))
        for message in errors:  # some sites failed, others worked: report, go on
            print(f"warning: {message}", file=sys.stderr)
        return out


def poll_cycle(pollers: list, session, policy: HttpPolicy, publish: Callable[[str, dict], None]) -> int:
    """One round over every poller; failures are reported, never raised. Returns records published."""
    total = 0
    for poller in pollers:
        poller.stats.polls += 1
        try:
            records = poller.poll(session, policy)
        except PollError as exc:
            poller.stats.failures += 1
            poller.stats.last_error = str(exc)
            print(f"warning: {poller.name} poll failed: {exc}", file=sys.stderr)
            continue
        if not records:
            poller.stats.unchanged += 1
        for topic, record in records:
            publish(topic, record)
        poller.stats.published += len(records)
        total += len(records)
    return total


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m sources.live",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--interval", type=positive_float, default=60.0, help="seconds between polls (default %(default)s)"
    )
    parser.add_argument("--once", action="store_true", help="poll once and exit (exit 1 when every poll failed)")
    parser.add_argument(
        "--max-polls", type=non_negative_int, default=0, help="stop after N rounds (0 = run until Ctrl-C)"
    )
    parser.add_argument("--comed-url", default=COMED_URL)
    parser.add_argument("--comed-site", default="chi", help="site whose offers come from ComEd (default %(default)s)")
    parser.add_argument("--no-comed", action="store_true")
    parser.add_argument(
        "--backfill", type=non_negative_int, default=1, help="newest ComEd prices published on the first poll"
    )
    parser.add_argument("--open-meteo-url", default=OPEN_METEO_URL)
    parser.add_argument(
        "--weather-sites", type=csv_list, help="sites to poll weather for (default: every catalogue site)"
    )
    parser.add_argument("--no-weather", action="store_true")
    parser.add_argument("--timeout", type=positive_float, default=10.0, help="seconds per HTTP request")
    parser.add_argument("--retries", type=non_negative_int, default=3)
    parser.add_argument("--backoff", type=float, default=1.0, help="first retry wait in seconds, doubled each time")
    add_kafka_args(parser)
    parser.add_argument("--prices-topic")
    parser.add_argument("--weather-topic")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)
    import requests

    sink: P.Sink | None = None
    pollers: list = []
    try:
        if args.backoff < 0:
            raise UserError("--backoff must be >= 0")
        if not args.no_comed:
            pollers.append(ComEdPoller(args.comed_url, args.comed_site, backfill=args.backfill))
        if not args.no_weather:
            catalogue = {s.site_id: s for s in load_sites()}
            wanted = args.weather_sites or list(catalogue)
            unknown = [s for s in wanted if s not in catalogue or catalogue[s].lat is None]
            if unknown:
                raise UserError(f"no coordinates for site(s) {', '.join(unknown)} in the catalogue")
            pollers.append(OpenMeteoPoller(args.open_meteo_url, [catalogue[s] for s in wanted]))
        if not pollers:
            raise UserError("nothing to poll (--no-comed and --no-weather)")
        topics = {
            T.PRICES: args.prices_topic or args.topic_prefix + T.PRICES,
            T.WEATHER: args.weather_topic or args.topic_prefix + T.WEATHER,
        }
        sink = P.make_sink(args.producer, args.bootstrap)
        policy = HttpPolicy(args.timeout, args.retries, args.backoff)
        session = requests.Session()
        session.headers["User-Agent"] = "geodispatch-live/0.1"

        def publish(topic: str, record: dict) -> None:
            ts = parse_ts_ms(record[event_field(topic, record)])  # a price's published_at, if any
            assert sink is not None
            sink.send(topics[topic], record["site_id"].encode(), json.dumps(record, separators=(",", ":")).encode(), ts)

        rounds = 0
        try:
            while True:
                started = time.monotonic()
                published = poll_cycle(pollers, session, policy, publish)
                sink.flush(30.0)
                rounds += 1
                print(f"{time.strftime('%H:%M:%S')} round {rounds}: published {published}", file=sys.stderr)
                if args.once or (args.max_polls and rounds >= args.max_polls):
                    break
                time.sleep(max(0.0, args.interval - (time.monotonic() - started)))
        except KeyboardInterrupt:
            pass
        sink.flush(30.0)
    except UserError as exc:
        fail(str(exc))
    finally:
        if sink is not None:
            sink.close()
    for p in pollers:
        s = p.stats
        print(
            f"{p.name}: {s.polls} polls, {s.published} published, {s.unchanged} with nothing new, "
            f"{s.failures} failed, {s.invalid} invalid entries"
            + (f" (last error: {s.last_error})" if s.failures else ""),
            file=sys.stderr,
        )
    if sink is not None and sink.errors:
        fail(f"{sink.errors} records failed delivery (last error: {sink.last_error})", code=1)
    if args.once and all(p.stats.failures for p in pollers):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
