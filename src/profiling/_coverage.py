"""Compiled kernels: exact cell coverage, zonal accumulation per tile, point sampling, point in
polygon.

Everything here works on plain arrays in pixel space (column ``x``, row ``y``, both growing away
from the raster's origin), so it is the same for any CRS and any affine geotransform: an affine
map keeps ratios of areas, so the fraction of a cell covered by a polygon is the same in pixel
space as on the ground.

Exact coverage
--------------
The fraction of cell ``(r, c)`` inside a polygon is the integral over the cell of the polygon's
winding number ``w``. For a point ``(x, y)``, ``w`` is the signed number of edges crossing the
horizontal line through it to its left (each edge counted +1 or -1 by its direction in ``y``).
Hence, edge by edge and row strip by row strip (``r <= y <= r + 1``),

    integral over cell c of w = sum over edges of sign * integral over y of
                                clamp(c + 1 - x(y), 0, 1) dy,

and for a straight edge, where ``x(y)`` is linear, the inner integral has a closed form:
``F(c) = H(c + 1) - H(c)`` with ``H(u) = |dy| * E[max(u - X, 0)]`` for ``X`` uniform between the
edge's two ``x`` in the strip (a quadratic in ``u`` between them, linear beyond). ``F`` is 0 left
of the edge and ``dy`` right of it, so the kernel deposits the differences ``F(c) - F(c - 1)``
of the few cells an edge crosses into a buffer and a running sum along each row yields every
cell's coverage in O(edges + cells) per polygon. This is the same quantity exactextract
computes by walking each ring through the grid. Cells the boundary passes through are flagged
on the way: their coverage is the running sum (exact up to rounding, about 1e-13, and kept
above 0 however small); every other cell is wholly in or out, and its sum is rounded to 1 or 0.

Edges are clipped to a window (a polygon's bounding box intersected with one raster tile) so
that a polygon is processed tile by tile: in ``x`` a clamp suffices (left of the window an edge
covers every cell of the window's row fully, right of it none), in ``y`` the strips outside the
window are skipped.
"""

from __future__ import annotations

import threading

import numba as nb
import numpy as np
import shapely

#: Held around the kernels that run numba's own parallel loops: numba's fallback threading
#: layer (workqueue) aborts when two Python threads (e.g. Dask workers) launch them at once.
PARALLEL = threading.Lock()

#: The least weight of a cell the boundary passes through (its exact share may round to 0).
TINY = float(np.finfo(np.float64).tiny)

# accumulator columns per (band, polygon)
ACC_COVERED = 0  # sum of coverage over cells inside the raster
ACC_VALID = 1  # sum of coverage over cells with data
ACC_SUM = 2  # sum of coverage * value
ACC_MAX = 3  # max value over cells with data and coverage > 0
ACC_FIRST = 4  # then one column per threshold (coverage at or above), then one per class


@nb.njit(cache=True, nogil=True, inline="always")
def _h(u: float, lo: float, hi: float) -> float:
    """E[max(u - X, 0)] for X uniform on [lo, hi] (a point mass when lo == hi)."""
    if u <= lo:
        return 0.0
    if u >= hi:
        return u - 0.5 * (lo + hi)
    return (u - lo) * (u - lo) / (2.0 * (hi - lo))


@nb.njit(cache=True, nogil=True)
def _deposit(buf: np.ndarray, row: int, xa: float, xb: float, d: float, width: int) -> None:
    """Add the differences of F for one linear piece (x from xa to xb, both in [0, width],
    signed height d) of an edge in one row strip."""
    lo = min(xa, xb)
    hi = max(xa, xb)
    cs = int(np.floor(lo))
    if cs >= width:
        return
    ce = min(int(np.floor(hi)) + 1, width - 1)
    prev = 0.0
    for c in range(cs, ce + 1):
        f = 1.0 if c >= hi else _h(c + 1.0, lo, hi) - _h(float(c), lo, hi)
        buf[row, c] += d * (f - prev)
        prev = f


@nb.njit(cache=True, nogil=True)
def _mark(mark: np.ndarray, row: int, lo: float, hi: float, width: int) -> None:
    """Flag the cells of ``row`` whose open interior a piece of boundary spanning ``lo..hi``
    in x (strictly inside the row in y) passes through: only they can be partly covered."""
    if lo < hi:
        for c in range(max(int(np.floor(lo)), 0), min(int(np.ceil(hi)), width)):
            mark[row, c] = 1
    else:
        c = int(np.floor(lo))
        if lo != c and 0 <= c < width:
            mark[row, c] = 1


@nb.njit(cache=True, nogil=True)
def _piece(buf: np.ndarray, mark: np.ndarray, row: int, ya: float, yb: float, x0: float,
           y0: float, slope: float, d_sign: float, width: int) -> None:
    """One edge in one row strip, from ya to yb (ya < yb), split where it leaves [0, width]."""
    # breakpoints where x(y) crosses 0 or width, strictly inside (ya, yb)
    b1 = ya
    b2 = yb
    if slope != 0.0:
        t0 = y0 + (0.0 - x0) / slope
        t1 = y0 + (width - x0) / slope
        lo_t = min(t0, t1)
        hi_t = max(t0, t1)
        if ya < lo_t < yb:
            b1 = lo_t
        if ya < hi_t < yb:
            b2 = hi_t
    ys = (ya, b1, b2, yb)
    for k in range(3):
        s = ys[k]
        e = ys[k + 1]
        if e <= s:
            continue
        xs = min(max(x0 + slope * (s - y0), 0.0), float(width))
        xe = min(max(x0 + slope * (e - y0), 0.0), float(width))
        _deposit(buf, row, xs, xe, d_sign * (e - s), width)
        _mark(mark, row, min(xs, xe), max(xs, xe), width)


@nb.njit(cache=True, nogil=True)
def rasterize(buf: np.ndarray, mark: np.ndarray, xs: np.ndarray, ys: np.ndarray,
              ring_off: np.ndarray, ring_sign: np.ndarray, ring_start: int, ring_stop: int,
              r0: int, c0: int, height: int, width: int) -> None:
    """Deposit the edges of rings ``ring_start:ring_stop`` into ``buf[:height, :width]``, the
    window whose top-left cell is ``(r0, c0)``; a running sum along each row then gives the
    signed coverage. ``ring_sign`` makes exteriors count positive and holes negative. ``mark``
    flags the cells the boundary passes through (see :func:`_weight`)."""
    for ring in range(ring_start, ring_stop):
        s = ring_sign[ring]
        for k in range(ring_off[ring], ring_off[ring + 1] - 1):
            ya = ys[k] - r0
            yb = ys[k + 1] - r0
            xa = xs[k] - c0
            xb = xs[k + 1] - c0
            if ya == yb:  # horizontal: no area to its right, but it cuts the cells it crosses
                if 0.0 < ya < height and ya != np.floor(ya):
                    _mark(mark, int(np.floor(ya)), min(max(min(xa, xb), 0.0), float(width)),
                          min(max(max(xa, xb), 0.0), float(width)), width)
                continue
            d_sign = s
            if ya > yb:
                ya, yb = yb, ya
                xa, xb = xb, xa
                d_sign = -s
            if yb <= 0.0 or ya >= height:
                continue
            slope = (xb - xa) / (yb - ya)
            lo = max(ya, 0.0)
            hi = min(yb, float(height))
            r_first = int(np.floor(lo))
            r_last = min(int(np.ceil(hi)) - 1, height - 1)
            for r in range(r_first, r_last + 1):
                sa = max(lo, float(r))
                sb = min(hi, r + 1.0)
                if sb <= sa:
                    continue
                _piece(buf, mark, r, sa, sb, xa, ya, slope, d_sign, width)


@nb.njit(cache=True, nogil=True)
def coverage(xs: np.ndarray, ys: np.ndarray, ring_off: np.ndarray, ring_sign: np.ndarray,
             ring_start: int, ring_stop: int, r0: int, c0: int, height: int,
             width: int) -> np.ndarray:
    """The coverage fraction of every cell of a window by one polygon (for tests and tools)."""
    buf = np.zeros((height, width))
    mark = np.zeros((height, width), np.uint8)
    rasterize(buf, mark, xs, ys, ring_off, ring_sign, ring_start, ring_stop, r0, c0, height,
              width)
    for r in range(height):
        a = 0.0
        for c in range(width):
            a += buf[r, c]
            buf[r, c] = _weight(a, mark[r, c])
    return buf


@nb.njit(cache=True, nogil=True, inline="always")
def _weight(a: float, marked: np.uint8) -> float:
    """A cell's coverage from its running sum ``a``.

    A cell the boundary does not pass through is wholly inside or wholly outside: its sum is an
    integer up to rounding (the winding number; 2 where parts of an invalid multipolygon
    overlap), read as 1 or 0. A cell it passes through is partly covered, strictly between 0
    and 1 for a valid polygon, however small the part: kept above 0 (so it counts for the
    maximum, as in exactextract) and at most 1.
    """
    if marked:
        return min(max(a, TINY), 1.0)
    return 1.0 if a > 0.5 else 0.0


@nb.njit(cache=True, nogil=True)
def zonal_tile(data: np.ndarray, tr0: int, tc0: int, nodata: float, has_nodata: bool,
               polys: np.ndarray, xs: np.ndarray, ys: np.ndarray, ring_off: np.ndarray,
               ring_sign: np.ndarray, poly_rings: np.ndarray, bbox: np.ndarray,
               thresholds: np.ndarray, classes: np.ndarray, acc: np.ndarray,
               buf: np.ndarray, mark: np.ndarray) -> None:
    """Accumulate the zonal statistics of ``polys`` over one tile.

    ``data`` is ``(bands, rows, cols)`` with its top-left cell at ``(tr0, tc0)``; ``bbox`` holds
    each polygon's ``row0, row1, col0, col1`` (end exclusive, inside the raster); ``acc`` is
    ``(bands, polygons, ACC_FIRST + thresholds + classes)`` with ``ACC_MAX`` initialised to
    -inf; ``buf`` (float64) and ``mark`` (uint8) are zeroed scratch space at least the tile's
    size, left zeroed.
    """
    nb_ = data.shape[0]
    th = data.shape[1]
    tw = data.shape[2]
    nt = thresholds.shape[0]
    nc = classes.shape[0]
    for i in range(polys.shape[0]):
        p = polys[i]
        wr0 = max(bbox[p, 0], tr0)
        wr1 = min(bbox[p, 1], tr0 + th)
        wc0 = max(bbox[p, 2], tc0)
        wc1 = min(bbox[p, 3], tc0 + tw)
        if wr1 <= wr0 or wc1 <= wc0:
            continue
        height = wr1 - wr0
        width = wc1 - wc0
        rasterize(buf, mark, xs, ys, ring_off, ring_sign, poly_rings[p], poly_rings[p + 1],
                  wr0, wc0, height, width)
        for r in range(height):
            a = 0.0
            dr = wr0 - tr0 + r
            for c in range(width):
                a += buf[r, c]
                buf[r, c] = 0.0
                w = _weight(a, mark[r, c])
                mark[r, c] = 0
                if w <= 0.0:
                    continue
                dc = wc0 - tc0 + c
                for b in range(nb_):
                    acc[b, p, ACC_COVERED] += w
                    v = float(data[b, dr, dc])
                    if np.isnan(v) or (has_nodata and v == nodata):
                        continue
                    acc[b, p, ACC_VALID] += w
                    acc[b, p, ACC_SUM] += w * v
                    if v > acc[b, p, ACC_MAX]:
                        acc[b, p, ACC_MAX] = v
                    for k in range(nt):
                        if v >= thresholds[k]:
                            acc[b, p, ACC_FIRST + k] += w
                    for k in range(nc):
                        if v == classes[k]:
                            acc[b, p, ACC_FIRST + nt + k] += w
                            break


@nb.njit(cache=True, nogil=True)
def sample_tile(data: np.ndarray, tr0: int, tc0: int, nodata: float, has_nodata: bool,
                rows: np.ndarray, cols: np.ndarray, idx: np.ndarray, out: np.ndarray) -> None:
    """``out[b, i]`` = the value of the cell ``(rows[i], cols[i])`` for the points ``idx`` in
    this tile (NaN for nodata)."""
    for k in range(idx.shape[0]):
        i = idx[k]
        r = rows[i] - tr0
        c = cols[i] - tc0
        for b in range(data.shape[0]):
            v = float(data[b, r, c])
            if has_nodata and v == nodata:
                v = np.nan
            out[b, i] = v


# --------------------------------------------------------------------------------------------
# Point in polygon
# --------------------------------------------------------------------------------------------

#: Relative error bound of a float64 orientation determinant (Shewchuk's ccwerrboundA).
_CCW_ERR = (3.0 + 16.0 * 2.0**-53) * 2.0**-53


@nb.njit(cache=True, nogil=True)
def _locate(px: float, py: float, xs: np.ndarray, ys: np.ndarray, segs: np.ndarray,
            lo: int, hi: int) -> int:
    """1 inside, 0 outside, 2 on the boundary, -1 undecided (too close to call in float64),
    testing the segments ``segs[lo:hi]`` (each from vertex k to k + 1): all the segments of a
    polygon whose extent in y meets the point's.

    The crossing rule of GEOS's ``RayCrossingCounter`` (a ray from the point towards +x): a
    vertex or a point on a horizontal segment is on the boundary; a segment straddling the
    point's ``y`` (one end strictly above, the other at or below) crosses the ray when the point
    lies to its left (seen upwards); the orientation's sign is trusted only beyond its rounding
    error bound, so the answer equals the exact one.
    """
    crossings = 0
    for j in range(lo, hi):
        k = segs[j]
        x1 = xs[k]
        y1 = ys[k]
        x2 = xs[k + 1]
        y2 = ys[k + 1]
        if (x1 == px and y1 == py) or (x2 == px and y2 == py):
            return 2
        if y1 == py and y2 == py:
            if min(x1, x2) <= px <= max(x1, x2):
                return 2
            continue
        if x1 < px and x2 < px:
            continue  # wholly left: the ray (towards +x) cannot meet it, nor can the point
        if (y1 > py and y2 <= py) or (y2 > py and y1 <= py):
            if x1 > px and x2 > px:
                crossings += 1  # wholly right: it crosses the ray, no orientation needed
                continue
            # orientation of (p1, p2, p) in float64, with its error bound
            detl = (x1 - px) * (y2 - py)
            detr = (y1 - py) * (x2 - px)
            det = detl - detr
            bound = _CCW_ERR * (abs(detl) + abs(detr))
            if -bound <= det <= bound:
                if det == 0.0 and detl == 0.0 and detr == 0.0:
                    return 2  # exactly collinear (both products exactly zero)
                return -1
            orient = 1 if det > 0 else -1
            if y2 < y1:
                orient = -orient
            if orient > 0:
                crossings += 1
    return 1 if crossings % 2 == 1 else 0


@nb.njit(cache=True, nogil=True, parallel=True)
def points_in_polygons(px: np.ndarray, py: np.ndarray, xs: np.ndarray, ys: np.ndarray,
                       bbox: np.ndarray, strip_off: np.ndarray, strip_h: np.ndarray,
                       strip_start: np.ndarray, strip_segs: np.ndarray, bins: np.ndarray,
                       bin_polys: np.ndarray, x0: float, y0: float, size: float, nx: int,
                       ny: int, out: np.ndarray, undecided: np.ndarray) -> None:
    """For each point, the lowest polygon index that holds it (boundary included), else -1.

    ``bins`` (CSR offsets over an ``nx`` x ``ny`` grid of square bins of ``size`` from
    ``(x0, y0)``) lists, per bin, the polygons whose bounding box meets it, ascending. Each
    polygon's height is cut in strips (``strip_off[p]`` the first, ``strip_h[p]`` their height;
    ``strip_start``/``strip_segs`` the segments meeting each strip), so a point tests only the
    segments near its ``y``. A point float64 cannot settle gets ``undecided = True`` and the
    first polygon it could be in (the caller decides it exactly).
    """
    for i in nb.prange(px.shape[0]):
        x = px[i]
        y = py[i]
        out[i] = -1
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        bx = int(np.floor((x - x0) / size))
        by = int(np.floor((y - y0) / size))
        if bx < 0 or by < 0 or bx >= nx or by >= ny:
            continue
        b = by * nx + bx
        for j in range(bins[b], bins[b + 1]):
            p = bin_polys[j]
            if x < bbox[p, 0] or x > bbox[p, 2] or y < bbox[p, 1] or y > bbox[p, 3]:
                continue
            n_strips = strip_off[p + 1] - strip_off[p]
            s = int(np.floor((y - bbox[p, 1]) / strip_h[p]))
            s = min(max(s, 0), n_strips - 1)
            g = strip_off[p] + s
            loc = _locate(x, y, xs, ys, strip_segs, strip_start[g], strip_start[g + 1])
            if loc == 0:
                continue
            out[i] = p
            if loc < 0:
                undecided[i] = True
            break


def ragged_polygons(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``coords, ring_off, poly_rings, exterior`` of polygons/multipolygons (shapely arrays)."""
    n = len(geoms)
    if n == 0:
        return (np.empty((0, 2)), np.zeros(1, np.int64), np.zeros(1, np.int64),
                np.zeros(0, bool))
    gtype, coords, offsets = shapely.to_ragged_array(geoms)
    if gtype == shapely.GeometryType.POLYGON:
        ring_off, poly_rings = offsets
        exterior = np.zeros(len(ring_off) - 1, bool)
        exterior[poly_rings[:-1][np.diff(poly_rings) > 0]] = True
    elif gtype == shapely.GeometryType.MULTIPOLYGON:
        ring_off, part_rings, geom_parts = offsets
        poly_rings = part_rings[geom_parts]
        exterior = np.zeros(len(ring_off) - 1, bool)
        exterior[part_rings[:-1][np.diff(part_rings) > 0]] = True
    else:
        raise ValueError(f"expected polygons, got {gtype!r}")
    return (coords, np.asarray(ring_off, np.int64), np.asarray(poly_rings, np.int64), exterior)


@nb.njit(cache=True, nogil=True, inline="always")
def _segment_distance(px: float, py: float, ax: float, ay: float, bx: float,
                      by: float) -> float:
    """Distance from a point to a segment, computed as GEOS's ``Distance::pointToSegment``."""
    if ax == bx and ay == by:
        return np.sqrt((px - ax) * (px - ax) + (py - ay) * (py - ay))
    len2 = (bx - ax) * (bx - ax) + (by - ay) * (by - ay)
    r = ((px - ax) * (bx - ax) + (py - ay) * (by - ay)) / len2
    if r <= 0.0:
        return np.sqrt((px - ax) * (px - ax) + (py - ay) * (py - ay))
    if r >= 1.0:
        return np.sqrt((px - bx) * (px - bx) + (py - by) * (py - by))
    s = ((ay - py) * (bx - ax) - (ax - px) * (by - ay)) / len2
    return abs(s) * np.sqrt(len2)


@nb.njit(cache=True, nogil=True, parallel=True)
def nearest_polygons(px: np.ndarray, py: np.ndarray, xs: np.ndarray, ys: np.ndarray,
                     ring_off: np.ndarray, poly_rings: np.ndarray, bbox: np.ndarray,
                     bins: np.ndarray, bin_polys: np.ndarray, x0: float, y0: float,
                     size: float, nx: int, ny: int, out: np.ndarray,
                     dist: np.ndarray) -> None:
    """For points outside every polygon: the nearest polygon (lowest index on a tie) and the
    distance to its boundary.

    Bins are searched in growing squares around the point's bin until the square's edge is
    farther than the best distance found (no polygon whose box lies outside can be nearer).
    ``bbox`` is ``xmin, ymin, xmax, ymax`` per polygon.
    """
    for i in nb.prange(px.shape[0]):
        x = px[i]
        y = py[i]
        best = np.inf
        best_p = -1
        if np.isfinite(x) and np.isfinite(y):
            bx = min(max(int(np.floor((x - x0) / size)), 0), nx - 1)
            by = min(max(int(np.floor((y - y0) / size)), 0), ny - 1)
            k = 0
            while True:
                for cy in range(by - k, by + k + 1):
                    if cy < 0 or cy >= ny:
                        continue
                    ring_row = cy == by - k or cy == by + k
                    step = 1 if ring_row else 2 * k
                    cx = bx - k
                    while cx <= bx + k:
                        if 0 <= cx < nx:
                            b = cy * nx + cx
                            for j in range(bins[b], bins[b + 1]):
                                p = bin_polys[j]
                                # distance to the box: a lower bound
                                dx = max(bbox[p, 0] - x, 0.0, x - bbox[p, 2])
                                dy = max(bbox[p, 1] - y, 0.0, y - bbox[p, 3])
                                if np.sqrt(dx * dx + dy * dy) > best:
                                    continue
                                if p > best_p and np.sqrt(dx * dx + dy * dy) == best:
                                    continue
                                d = np.inf
                                for ring in range(poly_rings[p], poly_rings[p + 1]):
                                    for s in range(ring_off[ring], ring_off[ring + 1] - 1):
                                        e = _segment_distance(x, y, xs[s], ys[s], xs[s + 1],
                                                              ys[s + 1])
                                        if e < d:
                                            d = e
                                if d < best or (d == best and p < best_p):
                                    best = d
                                    best_p = p
                        cx += step
                # the square of bins searched so far, and how far its edge is
                sx0 = x0 + (bx - k) * size
                sx1 = x0 + (bx + k + 1) * size
                sy0 = y0 + (by - k) * size
                sy1 = y0 + (by + k + 1) * size
                margin = min(x - sx0, sx1 - x, y - sy0, sy1 - y)
                covers = bx - k <= 0 and by - k <= 0 and bx + k >= nx - 1 and by + k >= ny - 1
                if covers or (best_p >= 0 and margin > best):
                    break
                k += 1
        out[i] = best_p
        dist[i] = best


# --------------------------------------------------------------------------------------------
# Points to cells and tiles
# --------------------------------------------------------------------------------------------

@nb.njit(cache=True, nogil=True, parallel=True)
def point_cells(x: np.ndarray, y: np.ndarray, inv: np.ndarray, nrows: int, ncols: int,
                th: int, tw: int, ntx: int, rows: np.ndarray, cols: np.ndarray,
                tile: np.ndarray) -> None:
    """Row, column (floor of the inverse geotransform ``inv = a, b, c, d, e, f``) and tile of
    each point; ``tile`` is -1 outside the raster (rows and columns are kept even then, -1
    for non-finite points)."""
    a, b, c, d, e, f = inv[0], inv[1], inv[2], inv[3], inv[4], inv[5]
    for i in nb.prange(x.shape[0]):
        fc = a * x[i] + b * y[i] + c
        fr = d * x[i] + e * y[i] + f
        if not (np.isfinite(fc) and np.isfinite(fr)) or abs(fc) > 4e18 or abs(fr) > 4e18:
            rows[i] = -1
            cols[i] = -1
            tile[i] = -1
            continue
        r = int(np.floor(fr))
        q = int(np.floor(fc))
        rows[i] = r
        cols[i] = q
        if 0 <= r < nrows and 0 <= q < ncols:
            tile[i] = (r // th) * ntx + q // tw
        else:
            tile[i] = -1


@nb.njit(cache=True, nogil=True)
def group_by_tile(tile: np.ndarray, rows: np.ndarray, cols: np.ndarray, n_tiles: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counting sort of the points by tile: ``order`` (points in tile order, those outside
    left out), ``start`` (CSR offsets per tile) and ``extent`` (per tile: the rows and columns
    its points span, ``row0, row1, col0, col1``, end exclusive)."""
    start = np.zeros(n_tiles + 1, np.int64)
    extent = np.empty((n_tiles, 4), np.int64)
    for t in range(n_tiles):
        extent[t, 0] = np.iinfo(np.int64).max
        extent[t, 1] = np.iinfo(np.int64).min
        extent[t, 2] = np.iinfo(np.int64).max
        extent[t, 3] = np.iinfo(np.int64).min
    for i in range(tile.shape[0]):
        t = tile[i]
        if t >= 0:
            start[t + 1] += 1
            r = rows[i]
            c = cols[i]
            if r < extent[t, 0]:
                extent[t, 0] = r
            if r + 1 > extent[t, 1]:
                extent[t, 1] = r + 1
            if c < extent[t, 2]:
                extent[t, 2] = c
            if c + 1 > extent[t, 3]:
                extent[t, 3] = c + 1
    for t in range(n_tiles):
        start[t + 1] += start[t]
    fill = start[:-1].copy()
    order = np.empty(start[n_tiles], np.int64)
    for i in range(tile.shape[0]):
        t = tile[i]
        if t >= 0:
            order[fill[t]] = i
            fill[t] += 1
    return order, start, extent
