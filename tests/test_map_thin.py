"""The sampled map draws fewer points where its density layer already shows the mass; the
layer is a PNG of the density grid under the points."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from backend.mapview import Density, MapPoints
from ui.map_figure import (
    DENSITY_HI,
    DENSITY_LO,
    PER_CELL,
    POINTS,
    THIN_CELLS,
    density_image,
    figure,
    thin,
)


def _points(x: np.ndarray, y: np.ndarray, inside: np.ndarray | None = None) -> MapPoints:
    n = len(x)
    return MapPoints(row_id=np.arange(n, dtype=np.int64) * 7, x=x.astype(np.float32),
                     y=y.astype(np.float32), caption=[f"row {i}" for i in range(n)],
                     color=np.arange(n, dtype=np.float32), categories=[], inside=inside,
                     total=n * 10, every=10)  # fmt: skip


def _grid() -> Density:
    """A 160 x 160 grid over [0, 160) x [0, 160): one unit a density cell."""
    return Density(x0=0.0, dx=1.0, y0=0.0, dy=1.0, counts=np.zeros((160, 160), np.int64))


def test_dense_cells_thinned_sparse_points_kept() -> None:
    rng = np.random.default_rng(0)
    dense = 3000  # all in one thinning cell: [8, 8 + THIN_CELLS)^2
    dx, dy = 8 + rng.random(dense) * THIN_CELLS, 8 + rng.random(dense) * THIN_CELLS
    lone = np.arange(30) * 5.0 + 2.5  # 30 outliers on the diagonal, none in the dense cell
    pts = _points(np.concatenate([dx, lone]), np.concatenate([dy, lone]))
    out = thin(pts, _grid())
    kept = set(out.row_id.tolist())
    outliers = set((np.arange(dense, dense + 30) * 7).tolist())
    assert outliers <= kept  # every outlier kept
    in_dense = len(kept - outliers)
    assert PER_CELL / 3 <= in_dense <= PER_CELL * 3  # about PER_CELL of 3,000
    # arrays stay aligned: each kept row keeps its own coordinates, caption and colour
    i = np.searchsorted(pts.row_id, out.row_id)
    assert (pts.x[i] == out.x).all() and (pts.color[i] == out.color).all()
    assert [pts.caption[j] for j in i] == out.caption
    assert (out.total, out.every) == (pts.total, pts.every)
    again = thin(pts, _grid())
    assert (again.row_id == out.row_id).all()  # the same points every run


def test_points_inside_the_selection_are_all_kept() -> None:
    rng = np.random.default_rng(1)
    x, y = 50 + rng.random(2000), 50 + rng.random(2000)
    inside = np.zeros(2000, bool)
    inside[:500] = True
    out = thin(_points(x, y, inside), _grid())
    assert out.inside is not None and out.inside.sum() == 500
    assert (~out.inside).sum() <= PER_CELL * 3


def test_a_sparse_map_is_left_alone() -> None:
    pts = _points(np.arange(100) * 1.5, np.arange(100) * 1.5)  # at most 3 a thinning cell
    assert thin(pts, _grid()) is pts


def test_density_layer_is_an_image_of_the_grid_in_its_place() -> None:
    counts = np.zeros((3, 4), np.int64)  # rows: y (row 0 at the bottom), columns: x
    counts[0, 0], counts[2, 3], counts[1, 1] = 1, 50, 7
    dens = Density(x0=-2.0, dx=0.5, y0=10.0, dy=2.0, counts=counts)
    img = density_image(dens)
    assert (img["x"], img["y"], img["sizex"], img["sizey"]) == (-2.0, 16.0, 2.0, 6.0)
    assert (img["xref"], img["yref"], img["layer"]) == ("x", "y", "below")
    png = img["source"].removeprefix("data:image/png;base64,")
    px = np.asarray(Image.open(io.BytesIO(base64.b64decode(png))))
    assert px.shape == (3, 4, 4)
    flipped = px[::-1]  # the image's top row is the grid's last (highest y) row
    assert (flipped[..., 3] > 0).tolist() == (counts > 0).tolist()  # empty cells transparent
    assert tuple(flipped[2, 3, :3]) == DENSITY_HI  # the densest cell is the darkest grey
    lone, mid = flipped[0, 0, :3].astype(int), flipped[1, 1, :3].astype(int)
    assert (np.asarray(DENSITY_LO) > lone).all() and (lone > mid).all()  # log count → darker
    assert (mid > np.asarray(DENSITY_HI)).all()


def test_a_sampled_figure_has_the_density_image_and_no_heatmap_trace() -> None:
    grid = _grid()
    grid.counts[5, 5] = 100
    xy = np.linspace(0, 159, 500)
    fig, roles = figure(_points(xy, xy), (0.0, 160.0, 0.0, 160.0), "score", None, grid)
    assert [t.type for t in fig.data] == ["scattergl"] and roles == [POINTS]
    assert len(fig.layout.images) == 1 and fig.layout.images[0].layer == "below"
    alone, _ = figure(_points(xy, xy), (0.0, 160.0, 0.0, 160.0), "score", None, None)
    assert not alone.layout.images  # every row drawn: no density layer
