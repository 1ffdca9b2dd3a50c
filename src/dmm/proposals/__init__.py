"""Mask proposals: the per-frame container, the pre-matching ops, the per-video store, the
legacy (maskrcnn-benchmark) import, the authors' maskrcnn-benchmark proposal nets run without
maskrcnn-benchmark, extraction, proposal-net training and detector-free proposals for the
synthetic dataset.

Modules: ``structures`` (Proposals), ``ops`` (paste / tight boxes / NMS / top-k), ``store``
(files and ProposalStore), ``legacy`` and ``reduce`` (split-wide files -> per-video store),
``legacy_net`` (maskrcnn-benchmark's Mask R-CNN from torchvision parts, its checkpoints and
Detectron pickles, the 2019 ``predictions.pth``), ``model`` (any proposal net from a file),
``extract``, ``train_propnet``, ``synthetic``.
"""
