"""The RVOS-style recurrent decoder of DMM-Net, with spatial and temporal ConvLSTM states.

Each ConvLSTM cell's gate convolution reads ``[input, mask, spatial hidden, temporal hidden]``
(input = level-5 skip at the coarsest cell, else ``[upsampled hidden, skip]``) and its output
chunks are the input, forget, output and cell gates. Each cell runs three times per object, once
per mask (previous prediction, first-frame reference, matched mask), and the three states are
averaged as the 2019 code does: ``(previous + matched + reference) / 3``.

The masks reach the cells through a max-pool pyramid: ``MaxPool2d(2, ceil_mode=True)`` once,
then once more per cell (odd sizes round up). The finest cell's hidden state is upsampled x2
(bilinear, ``align_corners=True``), a 3x3 convolution gives one channel, and that is resized to
the input size -- bilinearly with ``align_corners=True`` in eval mode (2019 ``evaluator.py``),
nearest in training mode (2019 ``trainer.py``) -- before the sigmoid.

``shared_gate_conv=True`` (the default) saves most of the decoder's work: the three runs differ
only in the one mask channel and a convolution is linear, so the gates are computed once per
object without the mask slice, the skip part once per frame, and the mask part for all objects
and masks in one convolution. It gives the same outputs up to float rounding (summation order);
``False`` runs the 2019 layout, three full convolutions per cell, for its exact bits.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _upsample(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """nn.UpsamplingBilinear2d: bilinear with align_corners=True."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


def mask_pyramid(masks: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """The decoder's mask inputs: ``MaxPool2d(2, ceil_mode=True)`` once, then ``levels`` more times.

    masks: (N, 1, H, W) -> ``levels`` maps, coarsest first (for H x W = 127 x 224 and 4 levels:
    4x7, 8x14, 16x28, 32x56).
    """
    x = F.max_pool2d(masks, 2, ceil_mode=True)
    out = []
    for _ in range(levels):
        x = F.max_pool2d(x, 2, ceil_mode=True)
        out.append(x)
    return out[::-1]


class ConvLSTMCell(nn.Module):
    """A ConvLSTM cell over ``[carry, skip, mask, spatial hidden, temporal hidden]``.

    ``carry`` is the upsampled hidden state of the coarser cell (0 channels for the first cell).
    The parameter ``Gates`` stays one convolution so checkpoints load.
    """

    def __init__(self, carry_channels: int, skip_channels: int, hidden_size: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.carry_channels = carry_channels
        self.skip_channels = skip_channels
        self.hidden_size = hidden_size
        in_channels = carry_channels + skip_channels + 1 + 2 * hidden_size
        self.Gates = nn.Conv2d(in_channels, 4 * hidden_size, kernel_size, padding=kernel_size // 2)

    @property
    def _mask_index(self) -> int:
        return self.carry_channels + self.skip_channels

    def _conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        return F.conv2d(x, weight, bias, padding=self.Gates.padding)

    def full_gates(self, carry: torch.Tensor | None, skip: torch.Tensor, mask: torch.Tensor,
                   spatial_h: torch.Tensor, temporal_h: torch.Tensor) -> torch.Tensor:
        """One full gate convolution, the 2019 layout: (B, *, h, w) -> (B, 4C, h, w)."""
        parts = ([] if carry is None else [carry]) + [skip, mask, spatial_h, temporal_h]
        return self.Gates(torch.cat(parts, 1))

    def frame_gates(self, skip: torch.Tensor) -> torch.Tensor:
        """Shared path: the skip part of the gates plus the bias, (B, Cs, h, w) -> (B, 4C, h, w)."""
        w = self.Gates.weight[:, self.carry_channels:self._mask_index]
        return self._conv(skip, w, self.Gates.bias)

    def mask_gates(self, masks: torch.Tensor) -> torch.Tensor:
        """Shared path: the mask part of the gates, (K, 1, h, w) -> (K, 4C, h, w)."""
        w = self.Gates.weight[:, self._mask_index:self._mask_index + 1]
        return self._conv(masks, w)

    def object_gates(self, carry: torch.Tensor | None, spatial_h: torch.Tensor, temporal_h: torch.Tensor) -> torch.Tensor:
        """Shared path: carry and both hidden states, (B, *, h, w) -> (B, 4C, h, w)."""
        weight = self.Gates.weight
        k = self._mask_index
        hidden_w = weight[:, k + 1:]
        if carry is None:
            return self._conv(torch.cat([spatial_h, temporal_h], 1), hidden_w)
        w = torch.cat([weight[:, :self.carry_channels], hidden_w], 1)
        return self._conv(torch.cat([carry, spatial_h, temporal_h], 1), w)

    @staticmethod
    def update(gates: Sequence[torch.Tensor], spatial_c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """LSTM update of the three gate maps (previous, reference, matched), states averaged.

        gates: 3 tensors (B, 4C, h, w) in chunk order input, forget, output, cell;
        spatial_c: (B, C, h, w). Returns (hidden, cell), each (B, C, h, w), averaged as
        ``(previous + matched + reference) / 3``.
        """
        hiddens, cells = [], []
        for g in gates:
            i, f, o, c = g.chunk(4, dim=1)
            cell = torch.sigmoid(f) * spatial_c + torch.sigmoid(i) * torch.tanh(c)
            hiddens.append(torch.sigmoid(o) * torch.tanh(cell))
            cells.append(cell)
        prev, ref, matched = 0, 1, 2
        hidden = (hiddens[prev] + hiddens[matched] + hiddens[ref]) / 3
        cell = (cells[prev] + cells[matched] + cells[ref]) / 3
        return hidden, cell


class Decoder(nn.Module):
    """Refines each object's masks coarse to fine; objects run in slot order, sharing a spatial state.

    Submodules ``clstm_list.{0..3}.Gates`` and ``conv_out`` match the authors' checkpoints.
    """

    def __init__(self, skip_channels: Sequence[int] = (128, 128, 64, 32),
                 hidden_sizes: Sequence[int] = (128, 64, 32, 16), kernel_size: int = 3,
                 shared_gate_conv: bool = True) -> None:
        super().__init__()
        if len(skip_channels) != len(hidden_sizes):
            raise ValueError("one skip map per ConvLSTM cell is needed")
        carries = [0] + list(hidden_sizes[:-1])
        self.clstm_list = nn.ModuleList(
            ConvLSTMCell(c, s, h, kernel_size) for c, s, h in zip(carries, skip_channels, hidden_sizes)
        )
        self.conv_out = nn.Conv2d(hidden_sizes[-1], 1, kernel_size, padding=kernel_size // 2)
        self.hidden_sizes = tuple(hidden_sizes)
        self.shared_gate_conv = shared_gate_conv

    def initial_memory(self, skips: Sequence[torch.Tensor], num_objects: int) -> list[torch.Tensor]:
        """All-zero temporal state: one (B, O, C_l, h_l, w_l) per level."""
        return [skip.new_zeros(skip.shape[0], num_objects, c, *skip.shape[-2:])
                for skip, c in zip(skips, self.hidden_sizes)]

    def _output_size(self, logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if self.training:
            return F.interpolate(logits, size=size)  # nearest, F.interpolate's default (2019 trainer)
        return _upsample(logits, size)  # nn.UpsamplingBilinear2d (2019 evaluator)

    def forward(self, skips: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], run: torch.Tensor,
                memory: Sequence[torch.Tensor] | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Refine the objects of a frame.

        Args:
            skips: 4 maps coarse to fine, (B, C_l, h_l, w_l).
            masks: the three per-object masks (previous prediction, reference, matched), each
                (B, O, H, W) float; (H, W) is the output size.
            run: (B, O) bool, the slots to refine. They run in slot order, each one's state
                passed to the next as the spatial state; other slots output zeros, leave the
                spatial state alone and keep their memory.
            memory: the temporal state of the previous frame (see :meth:`initial_memory`), or
                None (zeros).
        Returns:
            probabilities (B, O, H, W) in [0, 1] and the new memory.
        """
        mask_stack = torch.stack(list(masks), 0)  # (K, B, O, H, W)
        k, b, o, h, w = mask_stack.shape
        if memory is None:
            memory = self.initial_memory(skips, o)
        pooled = mask_pyramid(mask_stack.reshape(k * b * o, 1, h, w), len(skips))  # per level (K*B*O, 1, h_l, w_l)
        for level, (p, skip) in enumerate(zip(pooled, skips)):
            if tuple(p.shape[-2:]) != tuple(skip.shape[-2:]):
                raise ValueError(f"mask pyramid level {level} is {tuple(p.shape[-2:])} but the skip map is "
                                 f"{tuple(skip.shape[-2:])}: the input size does not suit the encoder")
        if self.shared_gate_conv:
            frame = [cell.frame_gates(skip) for cell, skip in zip(self.clstm_list, skips)]
            mask_part = [cell.mask_gates(p).reshape(k, b, o, -1, *p.shape[-2:]) for cell, p in zip(self.clstm_list, pooled)]
        pooled = [p.reshape(k, b, o, 1, *p.shape[-2:]) for p in pooled]

        spatial = [(s.new_zeros(b, c, *s.shape[-2:]), s.new_zeros(b, c, *s.shape[-2:]))
                   for s, c in zip(skips, self.hidden_sizes)]
        outputs = []
        new_memory = [list(mem.unbind(1)) for mem in memory]
        for obj in range(o):
            stepping = run[:, obj]
            # Skip a slot no video steps: free on the CPU; on CUDA reading the flag back would stall
            # the stream, so the slot is computed and masked by `keep` instead.
            if not stepping.is_cuda and not bool(stepping.any()):
                outputs.append(mask_stack.new_zeros(b, h, w))
                continue
            keep = stepping.view(b, 1, 1, 1)
            carry = None
            for level, (cell, skip) in enumerate(zip(self.clstm_list, skips)):
                h_s, c_s = spatial[level]
                h_t = memory[level][:, obj]
                if carry is not None:
                    carry = _upsample(carry, skip.shape[-2:])
                if self.shared_gate_conv:
                    shared = frame[level] + cell.object_gates(carry, h_s, h_t)
                    gates = [shared + mask_part[level][i, :, obj] for i in range(k)]
                else:
                    gates = [cell.full_gates(carry, skip, pooled[level][i, :, obj], h_s, h_t) for i in range(k)]
                hidden, cell_c = cell.update(gates, c_s)
                spatial[level] = (torch.where(keep, hidden, h_s), torch.where(keep, cell_c, c_s))
                new_memory[level][obj] = torch.where(keep, hidden, new_memory[level][obj])
                carry = hidden
            top = _upsample(carry, [2 * carry.shape[-2], 2 * carry.shape[-1]])
            logits = self._output_size(self.conv_out(top), (h, w))
            outputs.append(torch.sigmoid(logits[:, 0]) * keep[:, :, 0])
        return torch.stack(outputs, 1), [torch.stack(levels, 1) for levels in new_memory]
