import copy

import pytest
import torch

from dmm.model import DMMNet
from dmm.model.matching import relaxed_matching

from .model_helpers import small_cfg
from .test_dmmnet import proposals_from, scene
from .test_matching import random_batch

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_matching_layer_cuda_equals_cpu():
    cost, valid, _ = random_batch(11, 64)
    for it, pit in ((10, 5), (40, 5)):
        cpu = relaxed_matching(cost, valid, it, pit, 0.1)
        gpu = relaxed_matching(cost.cuda(), valid.cuda(), it, pit, 0.1).cpu()
        torch.testing.assert_close(gpu, cpu, atol=1e-5, rtol=0)


@pytest.mark.parametrize("training", [False, True])
def test_model_step_cuda_equals_cpu(training):
    torch.manual_seed(0)
    model = DMMNet.from_config(small_cfg()).train(training)
    gpu_model = copy.deepcopy(model).cuda()
    images, masks, valid = scene()
    proposals = [proposals_from(masks[0, :2], 4), proposals_from(masks[1], 0)]
    outs = []
    for m, dev in ((model, "cpu"), (gpu_model, "cuda")):
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        feats = m.encode(images.to(dev))
        templates = m.template_features(feats, masks.to(dev))
        out = m.step(feats, templates, [p.to(dev) for p in proposals], masks.to(dev), masks.to(dev),
                     masks.to(dev), valid.to(dev), None, masks.to(dev))
        outs.append(out)
    cpu, gpu = outs
    torch.testing.assert_close(gpu.assignment.cpu(), cpu.assignment, atol=1e-4, rtol=0)
    torch.testing.assert_close(gpu.refined.cpu(), cpu.refined, atol=1e-4, rtol=0)
    for k in cpu.losses:
        torch.testing.assert_close(gpu.losses[k].cpu(), cpu.losses[k], atol=1e-4, rtol=0)
