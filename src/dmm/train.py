"""Train DMM-Net: ``python -m dmm.train --config train [--resume DIR] [--init CKPT] [--overwrite] [KEY VALUE ...]``.

Multi-GPU: ``torchrun --nproc_per_node=4 -m dmm.train --config train``. An ``OUTPUT_DIR`` that
already holds a run is refused unless ``--resume`` continues it or ``--overwrite`` replaces it.
"""

from __future__ import annotations

import argparse
import logging
import sys

from .cli import add_overrides, command_parser, run
from .config import load_config, package_configs


def parse_args(argv=None) -> argparse.Namespace:
    p = command_parser("python -m dmm.train", __doc__)
    p.add_argument("--config", default="train",
                   help=f"a yaml file, or a package config name ({', '.join(package_configs())})")
    p.add_argument("--resume", default=None, help="a run folder or checkpoint folder to continue from "
                   "(default: start a new run)")
    p.add_argument("--init", default=None, help="initial weights: a checkpoint folder or released trainer.pt "
                   "(default: none; the backbone starts from MODEL.PRETRAINED)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in OUTPUT_DIR")
    add_overrides(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    # torch and the engine are imported here, not with the module: the scripts' checks read the
    # options through parse_args without paying for them.
    from .engine.distributed import cleanup, init_distributed
    from .engine.trainer import Trainer, TrainingError
    from .engine.validation import make_validator

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    cfg = load_config(args.config, args.opts)
    info = init_distributed(cfg.DEVICE)
    try:
        trainer = Trainer(cfg, info, resume=args.resume, init=args.init, overwrite=args.overwrite)
        validate = make_validator(trainer.cfg, info.device) if info.is_main else None
        last = trainer.train(validate)
        if info.is_main:
            print(f"training done; last checkpoint: {last}")
        return 0
    except TrainingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        cleanup(info)


if __name__ == "__main__":
    sys.exit(run(main))
