"""Generate the sample city's landslide and heat rasters, beside its flood depth.

Both are GENERATED (no real hazard model) on the flood raster's grid (EPSG:32748, 10 m cells),
from ``hazards/flood_depth.tif`` and the settlement polygons, with a fixed seed:

- ``hazards/landslide_class.tif``: landslide susceptibility, ordinal classes 1 (low) to 4 (very
  high), uint8, nodata 255 where the flood model has none. Susceptibility follows the slope of
  the ground: the ground is the flood field's surface (deeper water, lower ground) smoothed and
  given some relief, so the steepest cells are the river's banks and the rims of the flood
  basins, where Jakarta's riverbank slides happen. Classes by slope: the steepest 5 % of cells
  are class 4, the next 15 % class 3, the next 30 % class 2, the rest class 1.
- ``hazards/heat_lst.tif``: land surface temperature of a hot afternoon, °C, float32, nodata
  -9999 under a cloud (a patch left unknown, as in a real Landsat scene). Built-up land (the
  settlements, smoothed) is up to 5 °C hotter than the 30.5 °C background, standing water and
  wet ground (flood depth ≥ 0.15 m) up to 1.5 °C cooler, with a little smooth noise.

Run: ``python sample_data/generate_hazards.py`` (after ``generate.py``). Same bytes each run.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.features import rasterize
from scipy.ndimage import gaussian_filter

SEED = 20260302 + 7
HERE = Path(__file__).resolve().parent
HAZARDS = HERE / "hazards"
PROFILE = {"driver": "GTiff", "compress": "deflate", "tiled": True, "blockxsize": 256,
           "blockysize": 256}


def _grid() -> tuple[np.ndarray, dict]:
    with rasterio.open(HAZARDS / "flood_depth.tif") as src:
        depth = src.read(1).astype(float)
        depth[depth == src.nodata] = np.nan
        return depth, {"crs": src.crs, "transform": src.transform, "width": src.width,
                       "height": src.height}


def landslide(depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Susceptibility classes 1-4 from the slope of a ground surface (255 where unmodelled)."""
    rows, cols = np.indices(depth.shape)
    ground = gaussian_filter(-np.nan_to_num(depth, nan=0.0), 2.0)
    for _ in range(6):  # some relief of its own, so that dry land is not all class 1
        k, a = 2 * np.pi / rng.uniform(40, 150), rng.uniform(0, np.pi)
        ground += 0.15 * np.sin(k * (cols * np.cos(a) + rows * np.sin(a)) + rng.uniform(0, 6.3))
    gy, gx = np.gradient(ground, 10.0)
    slope = np.degrees(np.arctan(np.hypot(gx, gy)))
    known = ~np.isnan(depth)
    cuts = np.quantile(slope[known], [0.5, 0.8, 0.95])
    classes = (1 + np.searchsorted(cuts, slope, side="right")).astype("uint8")
    classes[~known] = 255
    return classes


def heat(depth: np.ndarray, grid: dict, rng: np.random.Generator) -> np.ndarray:
    """Land surface temperature (°C), -9999 under a cloud."""
    settlements = gpd.read_file(HERE / "settlements.gpkg").to_crs(grid["crs"])
    built = rasterize(((g, 1) for g in settlements.geometry), out_shape=depth.shape,
                      transform=grid["transform"], fill=0, dtype="uint8").astype(float)
    wet = np.nan_to_num(depth, nan=0.0) >= 0.15
    lst = (30.5 + 5.0 * gaussian_filter(built, 12.0) - 1.5 * gaussian_filter(wet * 1.0, 4.0)
           + 0.7 * gaussian_filter(rng.standard_normal(depth.shape), 6.0) * 6.0)
    lst = np.round(lst, 1).astype("float32")
    rows, cols = np.indices(depth.shape)
    cy, cx = rng.uniform(0.15, 0.3) * depth.shape[0], rng.uniform(0.6, 0.8) * depth.shape[1]
    cloud = ((rows - cy) / 22) ** 2 + ((cols - cx) / 35) ** 2 <= 1
    lst[cloud] = -9999.0
    return lst


def main() -> None:
    rng = np.random.default_rng(SEED)
    depth, grid = _grid()
    classes = landslide(depth, rng)
    with rasterio.open(HAZARDS / "landslide_class.tif", "w", count=1, dtype="uint8",
                       nodata=255, **grid, **PROFILE) as dst:
        dst.write(classes, 1)
    lst = heat(depth, grid, rng)
    with rasterio.open(HAZARDS / "heat_lst.tif", "w", count=1, dtype="float32",
                       nodata=-9999.0, predictor=3, **grid, **PROFILE) as dst:
        dst.write(lst, 1)
    known = lst[lst != -9999.0]
    print(f"landslide classes: {np.bincount(classes[classes != 255], minlength=5)[1:]}; "
          f"heat: {known.min():.1f}-{known.max():.1f} °C, "
          f"{(lst == -9999.0).sum()} cells under the cloud")


if __name__ == "__main__":
    main()
