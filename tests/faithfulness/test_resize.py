"""Frame and annotation resizing against the 2019 data loader (``tests/faithfulness/golden/resize.pt``)."""

import numpy as np
import torch

from dmm.data.transforms import normalize, resize_image, resize_mask, to_tensor

from .golden import load


def test_frames_are_resized_by_nearest_neighbour_as_pillow_6_did():
    r = load("resize")
    size = tuple(r["resized_image"].shape[:2])
    got = resize_image(r["raw_image"].numpy(), size)
    assert np.array_equal(got, r["resized_image"].numpy())
    image = normalize(to_tensor(got), r["meta"]["mean"], r["meta"]["std"])
    torch.testing.assert_close(image, r["image"], rtol=0, atol=1e-6)


def test_annotations_are_resized_by_nearest_neighbour():
    r = load("resize")
    got = resize_mask(r["raw_annotation"].numpy(), tuple(r["resized_annotation"].shape))
    assert np.array_equal(got, r["resized_annotation"].numpy())


def test_bilinear_is_a_named_alternative_that_differs():
    r = load("resize")
    size = tuple(r["resized_image"].shape[:2])
    smooth = resize_image(r["raw_image"].numpy(), size, "bilinear")
    assert (smooth != r["resized_image"].numpy()).mean() > 0.5
