"""Issue 29, item 6: images the docs say are refused are refused: one over Pillow's pixel limit
(which Pillow only warns about up to twice the limit) and a float TIFF of NaN."""

from __future__ import annotations

import numpy as np
from PIL import Image

from tests.faults.conftest import finished_run, invoke, refused  # noqa: F401


def test_an_image_over_the_pixel_limit_is_refused_not_restored(finished_run, tmp_path,
                                                               monkeypatch):
    # 12000 x 12000 is 1.6x Pillow's limit: scaled down here (limit 100 pixels, image 12 x 12).
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    path = tmp_path / "large.png"
    Image.new("L", (12, 12), 128).save(path)
    result = invoke("restore", finished_run, path, "--t", "2", "--out", tmp_path / "out")
    refused(result, "large.png", "more pixels", "Downscale")
    assert not (tmp_path / "out").exists()


def test_a_float_tiff_full_of_nan_is_refused(finished_run, tmp_path):
    path = tmp_path / "nan.tif"
    Image.fromarray(np.full((16, 16), np.nan, dtype=np.float32), mode="F").save(path)
    result = invoke("restore", finished_run, path, "--t", "2", "--out", tmp_path / "out")
    refused(result, "nan.tif", "NaN")
    assert not (tmp_path / "out").exists()
