"""Mask proposals: the per-frame container, the pre-matching ops, the per-video store, the
legacy (maskrcnn-benchmark) import, extraction with torchvision Mask R-CNN, proposal-net
training and detector-free proposals for the synthetic dataset.

Modules: ``structures`` (Proposals), ``ops`` (paste / tight boxes / NMS / top-k), ``store``
(files and ProposalStore), ``legacy`` and ``reduce`` (split-wide files -> per-video store),
``model``, ``extract``, ``train_propnet``, ``synthetic``.
"""
