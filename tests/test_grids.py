"""Stored pictures read back into tiles: the inverse of save_grid, and the measures taken on them (the
translation matrix's spread, the style runs' reconstruction spread)."""

import pytest
import torch

from sivae_core.translation.evaluate import matrix_spread
from sivae_core.viz.grids import read_grid, save_grid


def test_read_grid_returns_the_saved_tiles_to_8_bits(tmp_path):
    images = torch.rand(10, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    path = save_grid(images, tmp_path / "g.png", nrow=4)  # 3 rows, the last one padded with blank tiles
    tiles = read_grid(path, side=6, nrow=4)
    assert tiles.shape == (12, 3, 6, 6)
    assert (tiles[:10] - images).abs().max() <= 1 / 255 + 1e-6  # one 8-bit step
    assert torch.all(tiles[10:] == 1.0)  # the blank tiles are the white background
    with pytest.raises(ValueError, match="not a grid of 5 tiles of 6x6"):
        read_grid(path, side=6, nrow=5)


def test_matrix_spread_is_zero_for_the_code_a_decoder_ignores():
    g = torch.Generator().manual_seed(1)
    by_class = torch.rand(4, 3, 5, 5, generator=g)  # one image per class code: the decoder ignores the content code
    grid = torch.rand(25, 3, 5, 5, generator=g)  # first row and column: the content and class images
    grid.view(5, 5, 3, 5, 5)[1:, 1:] = by_class[:, None]
    along_row, down_column = matrix_spread(grid)
    assert along_row == 0.0
    # down a column the image changes from one class image to another: the mean over pairs of their differences
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    expected = sum(float((by_class[i] - by_class[j]).abs().mean()) for i, j in pairs) / len(pairs)
    assert down_column == pytest.approx(expected, rel=1e-6)


def test_picture_spread_ratio_tells_followed_inputs_from_ignored_ones(tmp_path):
    from sivae_core.experiments.style_eval import PICTURE_FACES, picture_spread_ratio

    faces = torch.rand(PICTURE_FACES, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    followed = save_grid(torch.cat([faces, faces]), tmp_path / "followed.png")
    ignored = save_grid(torch.cat([faces, faces[:1].expand_as(faces)]), tmp_path / "ignored.png")
    assert picture_spread_ratio(followed, 8) == pytest.approx(1.0, abs=1e-6)
    assert picture_spread_ratio(ignored, 8) == pytest.approx(0.0, abs=1e-9)
