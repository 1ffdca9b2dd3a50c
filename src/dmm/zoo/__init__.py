"""The released files of MODEL_ZOO.md in one command: ``python -m dmm.zoo list | fetch | check``.

:mod:`dmm.zoo.registry` names every release (the 2019 README's addresses, the layout it unpacks
to), :mod:`dmm.zoo.transfer` downloads with resume and unpacks safely, :mod:`dmm.zoo.checks`
verifies what is on disk by its content and keeps ``experiments/zoo.lock.json``, and
:mod:`dmm.zoo.fetch` puts it together.
"""

from dmm.zoo.registry import PURPOSES, RELEASES, Check, Product, Release, Zoo

__all__ = ["PURPOSES", "RELEASES", "Check", "Product", "Release", "Zoo"]
