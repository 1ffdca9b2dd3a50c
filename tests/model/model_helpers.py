"""Small builders shared by the model tests."""

from dmm.config import get_cfg_defaults


def small_cfg(backbone: str = "resnet18"):
    """Defaults with a randomly initialised backbone (no weight files needed)."""
    cfg = get_cfg_defaults()
    cfg.MODEL.BACKBONE = backbone
    cfg.MODEL.PRETRAINED = "none"
    return cfg
