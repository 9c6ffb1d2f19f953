"""The model learns for real: overfit the two real COCO panoptic samples from scratch on CPU."""

from __future__ import annotations

import pytest

#: Bars after 300 iterations (measured: mIoU ≈ 56, pACC ≈ 88 on the dev machine; an untrained or a
#: broken model — e.g. a matcher that ignores the masks — stays below mIoU 10 / pACC 50 because the
#: two images hold 11 classes, many of them small people, out of a 133-class vocabulary).
MIN_MIOU, MIN_PACC = 40.0, 80.0


@pytest.mark.slow
@pytest.mark.shared
def test_overfit_two_real_coco_images(shared_data, tmp_path):
    from ovlab.experiments.overfit import overfit_coco_samples

    res = overfit_coco_samples(shared_data / "samples" / "coco_panoptic", tmp_path, iterations=300)
    print(f"\noverfit 2 real COCO images: {res.iterations} iterations in {res.seconds:.0f} s -> "
          f"training-set mIoU {res.mIoU:.1f}, pACC {res.pACC:.1f} (bars {MIN_MIOU}/{MIN_PACC})")
    assert res.images == 2
    assert res.mIoU >= MIN_MIOU and res.pACC >= MIN_PACC
