"""The RVOS-style recurrent decoder of DMM-Net, with spatial and temporal ConvLSTM states.

Each ConvLSTM cell's gate convolution reads ``[input, mask, spatial hidden, temporal hidden]``
(input = level-5 skip at the coarsest cell, else ``[upsampled hidden, skip]``) and its output
chunks are the input, forget, output and cell gates. Each cell runs three times per object, once
per mask (previous prediction, first-frame reference, matched mask), and the three states are
averaged.

The three runs differ only in the one mask channel, and a convolution is linear, so the fast
path computes the gate convolution once per object from the weight without its mask slice,
adds the skip part once per frame (it is the same for every object) and the mask part for all
objects and masks in one convolution. ``shared_gate_conv=False`` runs the 2019 layout (three
full convolutions per cell); both give the same outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class DecoderState:
    """The decoder's temporal state: each object's hidden state at every scale after its last frame.

    Attributes:
        hidden: one tensor per cell, coarse to fine, (B, O, C_l, h_l, w_l); zeros for objects
            that were not valid.
    """

    hidden: list[torch.Tensor]

    def detach(self) -> "DecoderState":
        return DecoderState([h.detach() for h in self.hidden])


def _upsample(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """nn.UpsamplingBilinear2d: bilinear with align_corners=True."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


class ConvLSTMCell(nn.Module):
    """A ConvLSTM cell over ``[carry, skip, mask, spatial hidden, temporal hidden]``.

    ``carry`` is the upsampled hidden state of the coarser cell (0 channels for the first cell).
    The parameter ``Gates`` stays one convolution so checkpoints load; it is split at run time.
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

    def frame_gates(self, skip: torch.Tensor) -> torch.Tensor:
        """The skip part of the gates plus the bias, shared by all objects: (B, Cs, h, w) -> (B, 4C, h, w)."""
        w = self.Gates.weight[:, self.carry_channels:self._mask_index]
        return self._conv(skip, w, self.Gates.bias)

    def mask_gates(self, masks: torch.Tensor) -> torch.Tensor:
        """The mask part of the gates: (K, 1, h, w) -> (K, 4C, h, w)."""
        w = self.Gates.weight[:, self._mask_index:self._mask_index + 1]
        return self._conv(masks, w)

    def object_gates(self, carry: torch.Tensor | None, spatial_h: torch.Tensor, temporal_h: torch.Tensor) -> torch.Tensor:
        """The per-object part: carry and both hidden states, (B, *, h, w) -> (B, 4C, h, w)."""
        weight = self.Gates.weight
        k = self._mask_index
        hidden_w = weight[:, k + 1:]
        if carry is None:
            return self._conv(torch.cat([spatial_h, temporal_h], 1), hidden_w)
        w = torch.cat([weight[:, :self.carry_channels], hidden_w], 1)
        return self._conv(torch.cat([carry, spatial_h, temporal_h], 1), w)

    def full_gates(self, carry: torch.Tensor | None, skip: torch.Tensor, mask: torch.Tensor,
                   spatial_h: torch.Tensor, temporal_h: torch.Tensor) -> torch.Tensor:
        """One full gate convolution, the 2019 layout: (B, *, h, w) -> (B, 4C, h, w)."""
        parts = ([] if carry is None else [carry]) + [skip, mask, spatial_h, temporal_h]
        return self.Gates(torch.cat(parts, 1))

    @staticmethod
    def update(gates: torch.Tensor, spatial_c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """LSTM update of K gate maps, states averaged over K.

        gates: (K, B, 4C, h, w) in chunk order input, forget, output, cell; spatial_c: (B, C, h, w).
        Returns (hidden, cell), each (B, C, h, w).
        """
        i, f, o, g = gates.chunk(4, dim=2)
        cell = torch.sigmoid(f) * spatial_c + torch.sigmoid(i) * torch.tanh(g)
        hidden = torch.sigmoid(o) * torch.tanh(cell)
        return hidden.mean(dim=0), cell.mean(dim=0)


class Decoder(nn.Module):
    """Refines each object's masks coarse to fine; objects run in order, sharing a spatial state.

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

    def initial_state(self, skips: Sequence[torch.Tensor], num_objects: int) -> DecoderState:
        """All-zero temporal state for ``num_objects`` objects."""
        return DecoderState([
            skip.new_zeros(skip.shape[0], num_objects, c, *skip.shape[-2:])
            for skip, c in zip(skips, self.hidden_sizes)
        ])

    def forward(self, skips: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], valid: torch.Tensor,
                state: DecoderState | None = None) -> tuple[torch.Tensor, DecoderState]:
        """Refine every object of a frame.

        Args:
            skips: 4 maps coarse to fine, (B, C_l, h_l, w_l).
            masks: the three per-object masks (previous prediction, reference, matched), each
                (B, O, H, W) float in [0, 1]; (H, W) is the output size.
            valid: (B, O) bool. Invalid objects produce zeros and leave the spatial state unchanged.
            state: the previous frame's :class:`DecoderState`, or None (zeros).
        Returns:
            probabilities (B, O, H, W) in [0, 1] and the new :class:`DecoderState`.
        """
        mask_stack = torch.stack(list(masks), 0)  # (K, B, O, H, W)
        k, b, o, h, w = mask_stack.shape
        if state is None:
            state = self.initial_state(skips, o)
        pooled = [F.adaptive_max_pool2d(mask_stack.reshape(k * b * o, 1, h, w), skip.shape[-2:])
                  for skip in skips]  # per level (K*B*O, 1, h_l, w_l)
        if self.shared_gate_conv:
            frame = [cell.frame_gates(skip) for cell, skip in zip(self.clstm_list, skips)]
            mask_part = [cell.mask_gates(p).reshape(k, b, o, -1, *p.shape[-2:])
                         for cell, p in zip(self.clstm_list, pooled)]
        pooled = [p.reshape(k, b, o, 1, *p.shape[-2:]) for p in pooled]

        spatial = [(s.new_zeros(b, c, *s.shape[-2:]), s.new_zeros(b, c, *s.shape[-2:]))
                   for s, c in zip(skips, self.hidden_sizes)]
        outputs, new_hidden = [], [[] for _ in skips]
        for obj in range(o):
            keep = valid[:, obj].view(b, 1, 1, 1)
            carry = None
            cell_states = []
            for level, (cell, skip) in enumerate(zip(self.clstm_list, skips)):
                h_s, c_s = spatial[level]
                h_t = state.hidden[level][:, obj]
                if carry is not None:
                    carry = _upsample(carry, skip.shape[-2:])
                if self.shared_gate_conv:
                    shared = frame[level] + cell.object_gates(carry, h_s, h_t)
                    gates = shared.unsqueeze(0) + mask_part[level][:, :, obj]
                else:
                    gates = torch.stack([cell.full_gates(carry, skip, pooled[level][i, :, obj], h_s, h_t)
                                         for i in range(k)], 0)
                hidden, cell_c = cell.update(gates, c_s)
                cell_states.append((hidden, cell_c))
                carry = hidden
            top = _upsample(carry, [2 * carry.shape[-2], 2 * carry.shape[-1]])
            logits = F.interpolate(self.conv_out(top), size=(h, w))  # nearest, F.interpolate's default
            outputs.append(torch.sigmoid(logits[:, 0]) * keep[:, :, 0])
            for level, (hidden, cell_c) in enumerate(cell_states):
                spatial[level] = (torch.where(keep, hidden, spatial[level][0]),
                                  torch.where(keep, cell_c, spatial[level][1]))
                new_hidden[level].append(hidden * keep)
        return torch.stack(outputs, 1), DecoderState([torch.stack(hs, 1) for hs in new_hidden])
