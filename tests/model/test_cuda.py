"""CPU against CUDA (skipped without a GPU): what holds bit for bit and what within float tolerance.

The matching layer's output is not continuous in its cost (an argmin start and float-equality
early exits), so these tests feed both devices the same cost rather than comparing chained
results: the batched layer (float64 sums) gives the same bits on both; the exact layer (the 2019
float32 arithmetic, device-dependent like the 2019 code) agrees wherever it stops at the same
step; the other parts of a step agree within float tolerance.
"""

import copy

import pytest
import torch

from dmm.model import DMMNet
from dmm.model.matching import relax
from dmm.structures import TrackState

from .model_helpers import small_cfg
from .test_dmmnet import proposals_from, scene
from .test_matching import random_batch

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.fixture(autouse=True)
def no_tf32():
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@pytest.mark.parametrize("iters", [(10, 5), (40, 5)])
def test_batched_layer_is_bit_equal_across_devices(iters):
    cost, valid, _ = random_batch(11, 64)
    cpu, cpu_steps = relax(cost, valid, *iters, 0.1, "batched")
    gpu, gpu_steps = relax(cost.cuda(), valid.cuda(), *iters, 0.1, "batched")
    assert torch.equal(gpu_steps.cpu(), cpu_steps)
    assert torch.equal(gpu.cpu(), cpu)


@pytest.mark.parametrize("iters", [(10, 5), (40, 5)])
def test_exact_layer_agrees_where_it_stops_at_the_same_step(iters):
    cost, valid, _ = random_batch(12, 32)
    cpu, cpu_steps = relax(cost, valid, *iters, 0.1, "exact")
    gpu, gpu_steps = relax(cost.cuda(), valid.cuda(), *iters, 0.1, "exact")
    same = gpu_steps.cpu() == cpu_steps
    assert same.float().mean() >= 0.9
    torch.testing.assert_close(gpu.cpu()[same], cpu[same], rtol=0, atol=1e-5)


@pytest.mark.parametrize("training", [False, True])
def test_step_parts_agree_within_float_tolerance(training):
    torch.manual_seed(0)
    model = DMMNet.from_config(small_cfg()).train(training)
    gpu_model = copy.deepcopy(model).cuda()
    images, masks, valid = scene()
    proposals = [proposals_from(masks[0, :2], 4), proposals_from(masks[1], 0)]
    feats_cpu = model.encode(images)
    feats_gpu = gpu_model.encode(images.cuda())
    for a, b in zip(feats_cpu.skips + feats_cpu.props, feats_gpu.skips + feats_gpu.props):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-4, atol=1e-4)
    templates = model.template_features(feats_cpu, masks)
    torch.testing.assert_close(gpu_model.template_features(feats_gpu, masks.cuda()).cpu(), templates,
                               rtol=1e-4, atol=1e-4)
    out, _ = model.step(feats_cpu, proposals, TrackState(valid, masks, masks, templates, iou=masks))
    gpu = masks.cuda()
    gpu_out, _ = gpu_model.step(feats_gpu, [p.to("cuda") for p in proposals],
                                TrackState(valid.cuda(), gpu, gpu, templates.cuda(), iou=gpu))
    torch.testing.assert_close(gpu_out.cosine.cpu(), out.cosine, rtol=1e-4, atol=1e-4)
    # the decoder fed the same matched masks on both devices
    refined, _ = gpu_model.decoder(feats_gpu.skips, [masks.cuda(), masks.cuda(), out.matched.cuda()], out.run.cuda())
    torch.testing.assert_close(refined.cpu(), out.refined, rtol=1e-4, atol=1e-4)


def test_roi_auto_uses_torchvision_on_cuda_and_matches_the_separable_op():
    from dmm.model.roi_features import PROP_SCALES, roi_features

    g = torch.Generator().manual_seed(3)
    props = [torch.randn(2, 8, 64 // 2 ** k, 112 // 2 ** k, generator=g) for k in range(len(PROP_SCALES))]
    boxes = [torch.tensor([[1.0, 2.0, 60.0, 90.0]]), torch.tensor([[10.0, 0.0, 300.0, 250.0]])]
    cpu = roi_features(props, boxes, method="separable")
    gpu = roi_features([p.cuda() for p in props], [b.cuda() for b in boxes], method="auto")
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-5)
