"""Altair chart builders: pure functions from rows (lists of dicts from ``data.py``) to charts.

No basemap tiles anywhere (the page must work without internet): the site map is an Altair
scatter on longitude/latitude axes (an equirectangular map whose grid lines are the graticule).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import altair as alt
import pandas as pd

MEASURES = {
    "price_per_mwh": "Price (per MWh)",
    "cost_per_compute_hour": "Cost per compute-hour",
    "pue": "PUE",
    "available_slots": "Available slots",
}


def _empty(message: str) -> alt.Chart:
    return alt.Chart(pd.DataFrame({"text": [message]})).mark_text(size=14, color="gray").encode(text="text:N")


def site_series_chart(rows: Sequence[dict[str, Any]], measures: Sequence[str] = tuple(MEASURES)) -> alt.Chart:
    """One small line chart per measure (shared time axis), one colour per site, with tooltips
    and a legend that highlights a site on click."""
    if not rows:
        return _empty("no site-costs records in this window yet")
    df = pd.DataFrame(rows)
    df["tick"] = pd.to_datetime(df["tick"], utc=True)
    highlight = alt.selection_point(fields=["site_id"], bind="legend")
    charts = []
    for measure in measures:
        title = MEASURES.get(measure, measure)
        charts.append(
            alt.Chart(df, height=150)
            .mark_line(point=alt.OverlayMarkDef(size=18), interpolate="step-after")
            .encode(
                x=alt.X("tick:T", title="event time (UTC)", axis=alt.Axis(format="%d %b %H:%M")),
                y=alt.Y(f"{measure}:Q", title=title, scale=alt.Scale(zero=measure == "available_slots")),
                color=alt.Color("site_id:N", title="site"),
                opacity=alt.condition(highlight, alt.value(1.0), alt.value(0.15)),
                tooltip=[
                    alt.Tooltip("site_id:N", title="site"),
                    alt.Tooltip("tick:T", title="tick", format="%Y-%m-%d %H:%M"),
                    alt.Tooltip(f"{measure}:Q", title=title, format=",.4~f"),
                    alt.Tooltip("temp_c:Q", title="temp °C", format=".1f"),
                    alt.Tooltip("available:N", title="available"),
                ],
            )
            .add_params(highlight)
            .properties(title=title)
        )
    return alt.vconcat(*charts).resolve_scale(color="shared")


def cost_chart(rows: Sequence[dict[str, Any]]) -> alt.Chart:
    """Cumulative cost of the chosen plan against the greedy and naive baselines."""
    if not rows:
        return _empty("no pipeline-metrics records yet")
    df = pd.DataFrame(rows).rename(
        columns={"cum_cost": "dispatch plan", "cum_cost_greedy": "greedy baseline", "cum_cost_naive": "naive baseline"}
    )
    long = df.melt(id_vars=["tick"], var_name="plan", value_name="cumulative_cost")
    long["tick"] = pd.to_datetime(long["tick"], utc=True)
    return (
        alt.Chart(long, height=220)
        .mark_line()
        .encode(
            x=alt.X("tick:T", title="event time (UTC)", axis=alt.Axis(format="%d %b %H:%M")),
            y=alt.Y("cumulative_cost:Q", title="cumulative cost"),
            color=alt.Color(
                "plan:N",
                scale=alt.Scale(
                    domain=["dispatch plan", "greedy baseline", "naive baseline"],
                    range=["#1b9e77", "#d95f02", "#7570b3"],
                ),
            ),
            strokeDash=alt.condition(alt.datum.plan == "dispatch plan", alt.value([1, 0]), alt.value([5, 3])),
            tooltip=[
                alt.Tooltip("tick:T", format="%Y-%m-%d %H:%M"),
                "plan:N",
                alt.Tooltip("cumulative_cost:Q", format=",.2f"),
            ],
        )
    )


def regions_of(rows: Sequence[dict[str, Any]], split_lon: float = -30.0) -> list[tuple[str, list[dict[str, Any]]]]:
    """Split located sites into map panels (the Americas west of ``split_lon``, the rest east of
    it) so that sites an ocean apart do not squeeze each other into one corner."""
    located = [r for r in rows if r.get("lat") is not None and r.get("lon") is not None]
    west = [r for r in located if r["lon"] < split_lon]
    east = [r for r in located if r["lon"] >= split_lon]
    return [(name, part) for name, part in (("Europe & east", east), ("Americas", west)) if part]


def site_map(rows: Sequence[dict[str, Any]], width: int = 300) -> alt.Chart:
    """Sites on equirectangular maps (longitude/latitude axes with grid lines, no tiles), one
    panel per region, coloured by the current cost per compute-hour (green cheap, red dear, one
    scale for all panels), sized by available slots; grey when unavailable or without data."""
    panels = regions_of(rows)
    if not panels:
        return _empty("no site coordinates: is the site catalogue (GRD_SITES) readable?")
    costs = [r["cost_per_compute_hour"] for r in rows if r.get("cost_per_compute_hour") is not None]
    domain = [min(costs), max(costs)] if costs else None
    charts = [_map_panel(title, part, width, domain) for title, part in panels]
    return alt.hconcat(*charts).resolve_scale(color="shared", size="shared")


def _map_panel(
    title: str, rows: list[dict[str, Any]], width: int, cost_domain: list[float] | None
) -> alt.LayerChart:
    df = pd.DataFrame(rows)
    df["label"] = df["name"] + df["price_data"].map(lambda p: " (synthetic price)" if p == "synthetic price" else "")
    df["state"] = df["available"].map(
        lambda a: "available" if a is True else ("unavailable" if a is False else "no data")
    )
    df["slots"] = pd.to_numeric(df["available_slots"], errors="coerce").fillna(0)
    pad = 5.0
    lon0, lon1 = float(df["lon"].min()) - pad, float(df["lon"].max()) + pad
    lat0, lat1 = float(df["lat"].min()) - pad, float(df["lat"].max()) + pad
    if lon1 - lon0 < 24:  # keep a sensible minimum span around a single site
        mid = (lon0 + lon1) / 2
        lon0, lon1 = mid - 12, mid + 12
    if lat1 - lat0 < 16:
        mid = (lat0 + lat1) / 2
        lat0, lat1 = mid - 8, mid + 8
    lon1 += (lon1 - lon0) * 0.35  # room for the labels right of the points
    # Same ground distance per pixel on both axes at the panel's mid latitude.
    ratio = (lat1 - lat0) / ((lon1 - lon0) * math.cos(math.radians((lat0 + lat1) / 2)))
    height = int(min(max(width * ratio, 0.5 * width), 1.2 * width))
    x = alt.X("lon:Q", title="longitude °", scale=alt.Scale(domain=[lon0, lon1], nice=False, zero=False))
    y = alt.Y("lat:Q", title="latitude °", scale=alt.Scale(domain=[lat0, lat1], nice=False, zero=False))
    tooltip = [
        alt.Tooltip("name:N", title="site"),
        alt.Tooltip("site_id:N", title="id"),
        alt.Tooltip("region:N"),
        alt.Tooltip("price_data:N", title="price data"),
        alt.Tooltip("cost_per_compute_hour:Q", title="cost / compute-hour", format=",.4f"),
        alt.Tooltip("price_per_mwh:Q", title="price / MWh", format=",.2f"),
        alt.Tooltip("pue:Q", title="PUE", format=".3f"),
        alt.Tooltip("temp_c:Q", title="temp °C", format=".1f"),
        alt.Tooltip("available_slots:Q", title="available slots"),
        alt.Tooltip("state:N", title="state"),
        alt.Tooltip("tick:N", title="tick"),
    ]
    color: Any = alt.value("#9e9e9e")
    if cost_domain is not None:
        color = alt.condition(
            alt.datum.state == "available",
            alt.Color(
                "cost_per_compute_hour:Q",
                title="cost / compute-hour",
                scale=alt.Scale(scheme="redyellowgreen", reverse=True, domain=cost_domain),
            ),
            alt.value("#9e9e9e"),
        )
    points = (
        alt.Chart(df)
        .mark_circle(opacity=0.9, stroke="black", strokeWidth=0.6)
        .encode(
            x=x,
            y=y,
            color=color,
            size=alt.Size("slots:Q", legend=None, scale=alt.Scale(range=[150, 900], zero=True)),
            tooltip=tooltip,
        )
    )
    labels = (
        alt.Chart(df)
        .mark_text(align="left", dx=13, dy=-2, fontSize=12)
        .encode(x=x, y=y, text="label:N", tooltip=tooltip)
    )
    return alt.layer(points, labels).properties(title=title, width=width, height=height)
