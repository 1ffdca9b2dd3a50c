"""The DMM-Net model: encoder, ROI features, cost, matching, decoder, losses and checkpoints."""

from .decoder import Decoder
from .dmmnet import DMMNet, PaddedProposals, StepOutput
from .encoder import Encoder, Features
from .losses import weighted_total
from .matching import Matcher, build_matcher, relaxed_matching

__all__ = [
    "DMMNet", "StepOutput", "PaddedProposals", "Encoder", "Features", "Decoder",
    "Matcher", "build_matcher", "relaxed_matching", "weighted_total",
]
