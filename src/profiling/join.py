"""Households to settlements: boundaries checked on entry, and exact point-in-polygon placement.

A point on a boundary shared by two settlements goes to the one whose ``settlement_id`` sorts
first, so the answer never depends on the order of the boundary file. A point inside no
settlement keeps the id of the nearest one and its distance in metres.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer

from profiling._errors import BoundaryError

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("settlement_id", "name")


@dataclass
class Settlements:
    """Settlement polygons sorted by id: in their own CRS for exact containment, and in a metric
    CRS (their own if projected, else their UTM zone) for distances."""

    frame: pd.DataFrame
    metric: gpd.GeoSeries | None = None
    tree: shapely.STRtree | None = None
    metric_tree: shapely.STRtree | None = None

    @property
    def has_geometry(self) -> bool:
        """False for a plain list of settlements (surveys placed by a column)."""
        return self.tree is not None

    @property
    def ids(self) -> np.ndarray:
        """Settlement ids in index order."""
        return self.frame["settlement_id"].to_numpy(dtype=object)

    @property
    def crs(self) -> CRS:
        """The boundaries' own CRS."""
        return CRS.from_user_input(self.frame.crs)

    def lookup(self) -> dict[str, str]:
        """Casefolded id or name -> settlement id, for surveys placed by a column."""
        out: dict[str, str] = {}
        for sid, name in zip(self.frame["settlement_id"], self.frame["name"], strict=True):
            out.setdefault(str(name).strip().casefold(), sid)
        for sid in self.frame["settlement_id"]:
            out[str(sid).strip().casefold()] = sid
        return out


def read_boundaries(path: str | Path, layer: str | None = None) -> pd.DataFrame:
    """Read settlement boundaries from any vector file GDAL reads (or a CSV list of them)."""
    import pyogrio

    path = Path(path)
    if not path.exists():
        raise BoundaryError(path, "the boundary file does not exist")
    if path.suffix.lower() == ".csv":
        return read_settlement_list(path)
    try:
        gdf = pyogrio.read_dataframe(path, layer=layer)
    except Exception as exc:  # pyogrio raises several kinds
        raise BoundaryError(path, f"cannot be read ({exc.__class__.__name__}: "
                                  f"{str(exc).splitlines()[0][:200]})") from None
    return check_boundaries(gdf, str(path))


def read_settlement_list(path: Path) -> pd.DataFrame:
    """A CSV of ``settlement_id`` and ``name``, for surveys placed by a column (no geometry)."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise BoundaryError(path, f"not a readable CSV settlement list ({exc})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise BoundaryError(path, f"lacks the column(s) {', '.join(missing)}")
    ids = table["settlement_id"].str.strip()
    if (ids == "").any():
        raise BoundaryError(path, f"row(s) {(ids.index[ids == ''] + 2).tolist()[:10]} have no "
                                  "settlement_id")
    dup = sorted(set(ids[ids.duplicated()]))
    if dup:
        raise BoundaryError(path, f"settlement_id must be unique; repeated: {', '.join(dup)}")
    return table.assign(settlement_id=ids)


def check_boundaries(gdf: gpd.GeoDataFrame, source: str = "boundaries") -> gpd.GeoDataFrame:
    """Check the CRS, columns, ids and geometry types of settlement boundaries."""
    if gdf.crs is None or "undefined" in str(CRS.from_user_input(gdf.crs).name).lower():
        raise BoundaryError(source, "has no coordinate reference system; set one (for example "
                                    "in QGIS) before using it")
    if "settlement_id" not in gdf.columns:
        # a shapefile cuts field names at 10 characters
        cut = [c for c in gdf.columns if str(c).lower() in ("settlement", "settlemen")]
        if cut:
            log.info("%s: reading column %r as settlement_id", source, cut[0])
            gdf = gdf.rename(columns={cut[0]: "settlement_id"})
    missing = [c for c in REQUIRED_COLUMNS if c not in gdf.columns]
    if missing:
        raise BoundaryError(source, f"lacks the column(s) {', '.join(missing)}; it has "
                                    f"{', '.join(map(str, gdf.columns))}")
    ids = gdf["settlement_id"].astype("string").str.strip()
    if ids.isna().any():
        rows = (np.flatnonzero(ids.isna().to_numpy()) + 1).tolist()[:10]
        raise BoundaryError(source, f"feature(s) {rows} have no settlement_id")
    dup = ids[ids.duplicated(keep=False)]
    if len(dup):
        raise BoundaryError(source, f"settlement_id must be unique; repeated: "
                                    f"{', '.join(sorted(set(dup.tolist())))}")
    geom = gdf.geometry
    bad = geom.isna() | ~geom.geom_type.isin(["Polygon", "MultiPolygon"])
    if bad.any():
        which = ids[bad.to_numpy()].tolist()[:10]
        raise BoundaryError(source, f"settlement(s) {', '.join(which)} are not polygons")
    out = gdf.copy()
    out["settlement_id"] = ids.astype(object)
    out["name"] = out["name"].astype("string").fillna(out["settlement_id"]).astype(object)
    return out


def prepare(gdf: pd.DataFrame) -> Settlements:
    """Sort boundaries by id and index them in their own CRS and in a metric one."""
    frame = gdf.sort_values("settlement_id", kind="stable").reset_index(drop=True)
    if not isinstance(frame, gpd.GeoDataFrame):
        return Settlements(frame)
    crs = CRS.from_user_input(frame.crs)
    metric = frame.geometry if crs.is_projected else frame.geometry.to_crs(
        frame.estimate_utm_crs())
    return Settlements(frame, metric, shapely.STRtree(frame.geometry.values),
                       shapely.STRtree(metric.values))


@dataclass
class Placement:
    """Where points fall: ``inside`` (index or -1), ``nearest`` (index) and ``distance`` (m)."""

    inside: np.ndarray
    nearest: np.ndarray
    distance: np.ndarray


def place(lon: np.ndarray, lat: np.ndarray, settlements: Settlements) -> Placement:
    """Place WGS84 points: the settlement holding each, else the nearest and its distance.

    Points on a shared boundary (or in an overlap) go to the lowest settlement index, i.e. the
    first ``settlement_id`` in sort order. Non-finite coordinates get -1 and NaN.
    """
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    n = len(lon)
    inside = np.full(n, -1, dtype=np.int64)
    nearest = np.full(n, -1, dtype=np.int64)
    distance = np.full(n, np.nan)
    ok = np.isfinite(lon) & np.isfinite(lat)
    if not ok.any():
        return Placement(inside, nearest, distance)
    if settlements.tree is None or settlements.metric_tree is None or settlements.metric is None:
        raise ValueError("these settlements have no geometry: place households by a column")
    idx = np.flatnonzero(ok)
    # Containment is decided in the boundaries' own CRS: exact when they are in WGS84.
    wgs84 = CRS.from_epsg(4326)
    if settlements.crs.equals(wgs84):
        x, y = lon[ok], lat[ok]
    else:
        x, y = Transformer.from_crs(wgs84, settlements.crs, always_xy=True).transform(
            lon[ok], lat[ok])
    hit_pt, hit_poly = settlements.tree.query(shapely.points(x, y), predicate="intersects")
    if len(hit_pt):
        # lowest polygon index per point: sort by (point, polygon) and keep the first
        order = np.lexsort((hit_poly, hit_pt))
        hp, hg = hit_pt[order], hit_poly[order]
        first = np.r_[True, hp[1:] != hp[:-1]]
        inside[idx[hp[first]]] = hg[first]
    outside = inside[idx] < 0
    nearest[idx[~outside]] = inside[idx[~outside]]
    distance[idx[~outside]] = 0.0
    if outside.any():
        out_idx = idx[outside]
        mx, my = Transformer.from_crs(wgs84, settlements.metric.crs, always_xy=True).transform(
            lon[out_idx], lat[out_idx])
        pts = shapely.points(mx, my)
        q_pt, q_poly = settlements.metric_tree.query_nearest(pts, all_matches=True)
        order = np.lexsort((q_poly, q_pt))
        q_pt, q_poly = q_pt[order], q_poly[order]
        first = np.r_[True, q_pt[1:] != q_pt[:-1]]
        q_pt, q_poly = q_pt[first], q_poly[first]
        nearest[out_idx[q_pt]] = q_poly
        distance[out_idx[q_pt]] = shapely.distance(pts[q_pt], settlements.metric.values[q_poly])
    return Placement(inside, nearest, distance)


def settlement_table(settlements: Settlements) -> pd.DataFrame:
    """Settlement ids and names, without geometry."""
    return pd.DataFrame(settlements.frame[["settlement_id", "name"]])
