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

``shared_gate_conv=True`` (the default) saves most of the decoder's work. A convolution is
linear, so the gate weight is cut by input once per frame and each part is convolved where it
changes: the skip part (with the bias) once per frame, the temporal part for all objects of the
frame in one call, and only ``[carry, spatial hidden]`` per object (the spatial state is the one
link between objects). The one-channel mask part is a GEMM of the unfolded masks
(:func:`add_mask_gates`), added as the three runs' gates are written. Parts known to be zero are
not computed (no temporal state yet, the spatial state before the first object), and the output
head (upsample, ``conv_out``, resize, sigmoid) runs once for all objects. The maps are
channels-last, where CPU convolutions and bilinear resizes of these small maps run up to twice as
fast, and the three runs' LSTM updates share one sigmoid over all four gates, with ``tanh(z) = 2
sigmoid(2z) - 1`` (the cell-input rows of the weight doubled, which is exact): torch's CPU tanh
costs about three sigmoids. It gives the same outputs up to float rounding; ``False`` runs the
2019 layout, three full convolutions per cell, for its exact bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _upsample(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """nn.UpsamplingBilinear2d: bilinear with align_corners=True."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def add_mask_gates(base: torch.Tensor, taps: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The three runs' gates: ``base`` plus the mask part of each run, in one GEMM.

    base: (B, 4C, h, w), the gates without the mask input; taps: (3, B, k*k, h*w), the runs'
    masks unfolded (``F.unfold`` of the pooled masks); weight: (4C, 1, k, k), the mask input's
    gate weight. Returns (3, B, 4C, h, w), channels-last. A one-channel convolution runs far
    below a convolution library's usual rate; taps times weight is a plain GEMM, and
    ``baddbmm`` adds it to ``base`` as it writes (equal up to float rounding).
    """
    b, c4, h, w = base.shape
    rows = base.permute(0, 2, 3, 1).reshape(1, b * h * w, c4)  # a view when base is channels-last
    taps = taps.transpose(-1, -2).reshape(3, b * h * w, -1)
    out = torch.baddbmm(rows, taps, weight.reshape(c4, -1).t().expand(3, -1, -1))
    return out.view(3, b, h, w, c4).permute(0, 1, 4, 2, 3)


def mask_pyramid(masks: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """The decoder's mask inputs: ``MaxPool2d(2, ceil_mode=True)`` once, then ``levels`` more times.

    masks: (N, 1, H, W) -> ``levels`` maps, coarsest first (for H x W = 127 x 224 and 4 levels:
    4x7, 8x14, 16x28, 32x56).
    """
    # Two ceil-mode 2x2 poolings are one ceil-mode 4x4 pooling (windows rows 4i..4i+3, clipped):
    # the same maxima, one pass over the full-size masks.
    x = F.max_pool2d(masks, 4, ceil_mode=True)
    out = [x]
    for _ in range(levels - 1):
        x = F.max_pool2d(x, 2, ceil_mode=True)
        out.append(x)
    return out[::-1]


def pyramid_sizes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    """The sizes :func:`mask_pyramid` gives, coarsest first (each pooling rounds odd sizes up)."""
    sizes = []
    for _ in range(levels + 1):
        height, width = -(-height // 2), -(-width // 2)
        sizes.append((height, width))
    return sizes[1:][::-1]


@dataclass(frozen=True)
class GateWeights:
    """A cell's gate weight cut by input, for one frame's shared path (each (4C, C_in, k, k)).

    ``carry_spatial`` reads ``[carry, spatial hidden]`` (just the spatial hidden at the first
    cell); ``carry`` reads the carry alone (None at the first cell). The rows of the cell-input
    gate (the last C) are doubled, weights and bias: see :meth:`ConvLSTMCell.update`.
    """

    bias: torch.Tensor
    skip: torch.Tensor
    mask: torch.Tensor
    temporal: torch.Tensor
    carry_spatial: torch.Tensor
    carry: torch.Tensor | None


class ConvLSTMCell(nn.Module):
    """A ConvLSTM cell over ``[carry, skip, mask, spatial hidden, temporal hidden]``.

    ``carry`` is the upsampled hidden state of the coarser cell (0 channels for the first cell).
    The parameter ``Gates`` stays one convolution so checkpoints load; the shared path cuts its
    weight at run time (:meth:`split_weights`).
    """

    def __init__(self, carry_channels: int, skip_channels: int, hidden_size: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.carry_channels = carry_channels
        self.skip_channels = skip_channels
        self.hidden_size = hidden_size
        in_channels = carry_channels + skip_channels + 1 + 2 * hidden_size
        self.Gates = nn.Conv2d(in_channels, 4 * hidden_size, kernel_size, padding=kernel_size // 2)

    def conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """The gate convolution with a part of the weight: (N, C_in, h, w) -> (N, 4C, h, w)."""
        return F.conv2d(x, weight, bias, padding=self.Gates.padding)

    def full_gates(self, carry: torch.Tensor | None, skip: torch.Tensor, mask: torch.Tensor,
                   spatial_h: torch.Tensor, temporal_h: torch.Tensor) -> torch.Tensor:
        """One full gate convolution, the 2019 layout: (B, *, h, w) -> (B, 4C, h, w)."""
        parts = ([] if carry is None else [carry]) + [skip, mask, spatial_h, temporal_h]
        return self.Gates(torch.cat(parts, 1))

    def split_weights(self) -> GateWeights:
        """The gate weight cut by input (channels-last copies, differentiable), made once per frame,
        the cell-input gate's rows doubled (exact in floating point)."""
        c, k, h = self.carry_channels, self.carry_channels + self.skip_channels, self.hidden_size
        scale = torch.ones(4 * h, device=self.Gates.bias.device, dtype=self.Gates.bias.dtype)
        scale[3 * h:] = 2
        weight = self.Gates.weight * scale.view(-1, 1, 1, 1)
        spatial = weight[:, k + 1:k + 1 + h]
        return GateWeights(
            bias=self.Gates.bias * scale,
            skip=_channels_last(weight[:, c:k]),
            mask=weight[:, k:k + 1].contiguous(),
            temporal=_channels_last(weight[:, k + 1 + h:]),
            carry_spatial=_channels_last(torch.cat([weight[:, :c], spatial], 1) if c else spatial),
            carry=_channels_last(weight[:, :c]) if c else None,
        )

    def recurrent_gates(self, weights: GateWeights, carry: torch.Tensor | None,
                        spatial_h: torch.Tensor | None) -> torch.Tensor | None:
        """The per-object part, ``[carry, spatial hidden]`` -> (B, 4C, h, w); None for a part known
        to be zero is left out (None when both are)."""
        if spatial_h is None:
            return None if carry is None else self.conv(carry, weights.carry)
        x = spatial_h if carry is None else torch.cat([carry, spatial_h], 1)
        return self.conv(x, weights.carry_spatial)

    @staticmethod
    def update(gates: torch.Tensor, spatial_c: torch.Tensor | None,
               doubled: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """LSTM update of the three runs' gates (previous, reference, matched), states averaged.

        gates: (3, B, 4C, h, w), any memory format, in chunk order input, forget, output, cell;
        spatial_c: (B, C, h, w), or None for a zero state. Returns (hidden, cell), each
        (B, C, h, w), averaged as ``(previous + matched + reference) / 3``.

        ``doubled``: the cell-input chunk holds 2z, not z (:meth:`split_weights`), and both tanh
        are computed as ``tanh(z) = 2 sigmoid(2z) - 1``: one sigmoid over all four chunks, and
        about half the time of torch's CPU tanh, equal up to float rounding.
        """
        if doubled:  # i * tanh(z) = 2 i s - i with s = sigmoid(2z); likewise o * tanh(cell)
            i, f, o, s = torch.sigmoid(gates).chunk(4, dim=2)
            cell = torch.addcmul(-i, i, s, value=2)
            if spatial_c is not None:
                cell = torch.addcmul(cell, f, spatial_c)
            hidden = torch.addcmul(-o, o, torch.sigmoid(2 * cell), value=2)
        else:
            c = gates.shape[2] // 4
            sig, cell_in = gates.split([3 * c, c], dim=2)
            i, f, o = torch.sigmoid(sig).chunk(3, dim=2)
            cell = i * torch.tanh(cell_in)
            if spatial_c is not None:
                cell = f * spatial_c + cell
            hidden = o * torch.tanh(cell)
        prev, ref, matched = hidden.unbind(0)
        c_prev, c_ref, c_matched = cell.unbind(0)
        return (prev + matched + ref) / 3, (c_prev + c_matched + c_ref) / 3


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

    def _head(self, finest: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """finest: (N, C, h, w) hidden states of the finest cell -> (N, H, W) probabilities."""
        top = _upsample(finest, [2 * finest.shape[-2], 2 * finest.shape[-1]])
        return torch.sigmoid(self._output_size(self.conv_out(top), size)[:, 0])

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
        for level, (size, skip) in enumerate(zip(pyramid_sizes(h, w, len(skips)), skips)):
            if size != tuple(skip.shape[-2:]):
                raise ValueError(f"mask pyramid level {level} is {size} but the skip map is "
                                 f"{tuple(skip.shape[-2:])}: the input size does not suit the encoder")
        # The slots to compute: on the CPU those some video steps; on CUDA reading the flags back
        # would stall the stream, so every slot is computed and masked by `keep` instead.
        slots = list(range(o)) if run.is_cuda else [i for i, s in enumerate(run.any(0).tolist()) if s]
        old_memory = [list(m.unbind(1)) for m in (memory or self.initial_memory(skips, o))]
        if not slots:
            return mask_stack.new_zeros(b, o, h, w), [torch.stack(m, 1) for m in old_memory]
        chosen = mask_stack if len(slots) == o else mask_stack[:, :, slots]
        n = len(slots)
        pooled = mask_pyramid(chosen.permute(2, 0, 1, 3, 4).reshape(n * k * b, 1, h, w), len(skips))
        if self.shared_gate_conv:
            gates_of = self._shared_gates(skips, pooled, memory, slots)
        else:
            gates_of = self._full_gates(skips, pooled, old_memory, slots)

        spatial: list[tuple[torch.Tensor | None, torch.Tensor | None]] = [(None, None)] * len(skips)
        if not self.shared_gate_conv:  # the 2019 layout convolves the zero state too
            spatial = [(s.new_zeros(b, c, *s.shape[-2:]),) * 2 for s, c in zip(skips, self.hidden_sizes)]
        new_memory = [list(m) for m in old_memory]
        finest = []
        for j, obj in enumerate(slots):
            stepping = run[:, obj]
            keep = None if not run.is_cuda and bool(stepping.all()) else stepping.view(b, 1, 1, 1)
            carry = None
            for level, (cell, skip) in enumerate(zip(self.clstm_list, skips)):
                h_s, c_s = spatial[level]
                if carry is not None:
                    carry = _upsample(carry, skip.shape[-2:])
                hidden, cell_c = cell.update(gates_of(j, level, carry, h_s), c_s, self.shared_gate_conv)
                if keep is None:
                    spatial[level] = (hidden, cell_c)
                    new_memory[level][obj] = hidden
                else:
                    if h_s is None:
                        h_s, c_s = torch.zeros_like(hidden), torch.zeros_like(cell_c)
                    spatial[level] = (torch.where(keep, hidden, h_s), torch.where(keep, cell_c, c_s))
                    new_memory[level][obj] = torch.where(keep, hidden, new_memory[level][obj])
                carry = hidden
            finest.append(carry)
        probs = self._head(torch.cat(finest, 0), (h, w)).view(n, b, h, w)
        probs = probs * run[:, slots].t().reshape(n, b, 1, 1).to(probs.dtype)
        outputs = [mask_stack.new_zeros(b, h, w)] * o
        for j, obj in enumerate(slots):
            outputs[obj] = probs[j]
        return torch.stack(outputs, 1), [torch.stack(levels, 1) for levels in new_memory]

    def _shared_gates(self, skips: Sequence[torch.Tensor], pooled: Sequence[torch.Tensor],
                      memory: Sequence[torch.Tensor] | None, slots: list[int]):
        """The shared path's frame-wide parts, and a function ``(j, level, carry, spatial_h) ->
        (3, B, 4C, h, w)`` giving the three runs' gates of the ``j``-th computed slot.

        pooled: per level (N * 3 * B, 1, h, w), slot-major (unfolded once per frame); memory:
        (B, O, C, h, w) per level or None.
        """
        n = len(slots)
        weights = [cell.split_weights() for cell in self.clstm_list]
        common, taps = [], []
        for cell, wts, skip, p, level in zip(self.clstm_list, weights, skips, pooled, range(len(skips))):
            b, _, hh, ww = skip.shape
            frame = cell.conv(_channels_last(skip), wts.skip, wts.bias)  # (B, 4C, h, w)
            if memory is None:
                common.append([frame] * n)
            else:
                mem = memory[level] if n == memory[level].shape[1] else memory[level][:, slots]
                temporal = cell.conv(_channels_last(mem.transpose(0, 1).reshape(n * b, -1, hh, ww)), wts.temporal)
                common.append([t + frame for t in temporal.view(n, b, *temporal.shape[1:]).unbind(0)])
            k = cell.Gates.kernel_size[0]
            taps.append(F.unfold(p, k, padding=k // 2).view(n, -1, b, k * k, hh * ww).unbind(0))

        def gates(j: int, level: int, carry: torch.Tensor | None, spatial_h: torch.Tensor | None) -> torch.Tensor:
            rec = self.clstm_list[level].recurrent_gates(weights[level], carry, spatial_h)
            base = common[level][j] if rec is None else common[level][j] + rec
            return add_mask_gates(base, taps[level][j], weights[level].mask)

        return gates

    def _full_gates(self, skips: Sequence[torch.Tensor], pooled: Sequence[torch.Tensor],
                    memory: list[list[torch.Tensor]], slots: list[int]):
        """The 2019 layout: per run one convolution of ``[carry, skip, mask, spatial, temporal]``."""
        n = len(slots)
        masks = [p.view(n, -1, skips[0].shape[0], 1, *p.shape[-2:]) for p in pooled]

        def gates(j: int, level: int, carry: torch.Tensor | None, spatial_h: torch.Tensor) -> torch.Tensor:
            cell, temporal = self.clstm_list[level], memory[level][slots[j]]
            return torch.stack([cell.full_gates(carry, skips[level], m, spatial_h, temporal) for m in masks[level][j]])

        return gates
