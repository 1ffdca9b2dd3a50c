"""The released files of MODEL_ZOO.md: where each came from (the 2019 README's addresses), what it
unpacks to, where it goes and what it must be.

A :class:`Release` is one file at its source (an archive, or a single weights file); it gives one
or more :class:`Product` s, each a folder or file put at a path of MODEL_ZOO.md's layout and
checked by its content (:class:`Check`). ``python -m dmm.zoo`` names products: a release with one
product is named like it; the products of ``feature_coco81`` are ``feature_coco81/<split>``, and
the release's name selects all of them.

Paths are relative to the folder that holds ``experiments/`` (the repository root, as the
scripts use it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dmm.errors import ConfigError

#: the 2019 README's host of the DMM-Net archives
_TORONTO = "http://www.cs.toronto.edu/~xiaohui"
_ONEDRIVE = "https://hkustconnect-my.sharepoint.com"


@dataclass(frozen=True)
class Check:
    """What a product must be.

    kind: ``dmmnet`` (a DMM-Net checkpoint folder that loads strictly into the model of
    ``config``; with ``optimizers`` it must also hold the optimizer states online training
    restores), ``rvos`` (the RVOS model folder the ResNet-101 stage of ``config`` starts from),
    ``propnet`` (a proposal-net file of architecture ``arch`` with ``classes`` classes) or
    ``proposals`` (a folder with ``predictions.pth`` whose per-video store, ``videos_top<topk>``
    or ``videos_all`` for ``topk`` None, covers every frame of dataset split ``split``).
    """

    kind: str
    config: str = ""
    optimizers: bool = False
    arch: str = ""
    classes: int = 0
    split: str = ""
    topk: int | None = None


@dataclass(frozen=True)
class Product:
    """One checked item on disk.

    name: its ``dmm.zoo`` name. path: where it goes (relative to the root). member: its path in
    the unpacked archive ("" for a release that is a single file). what: a line for ``list``.
    """

    name: str
    path: str
    member: str
    check: Check
    what: str


@dataclass(frozen=True)
class Release:
    """One released file.

    name: its ``dmm.zoo`` name. file: its file name at the source (``--from`` takes the same
    name). addresses: direct download addresses, the 2019 README's first. page: where it was
    shared for download by hand (a OneDrive folder or file) when there is no direct address.
    unpack_under: the folder the archive is unpacked in (MODEL_ZOO.md). size: bytes, when known.
    """

    name: str
    file: str
    addresses: tuple[str, ...]
    unpack_under: str
    products: tuple[Product, ...]
    page: str = ""
    size: int | None = None
    note: str = ""

    @property
    def is_archive(self) -> bool:
        return self.file.endswith((".tar.gz", ".tgz", ".tar", ".zip"))

    @property
    def manual(self) -> bool:
        """Shared as a page to download from by hand (no direct address)."""
        return not self.addresses


def _dmmnet(name: str, member: str, config: str, what: str, optimizers: bool = False) -> Product:
    return Product(name, f"experiments/dmmnet/{member}", member, Check("dmmnet", config=config, optimizers=optimizers),
                   what)


def _proposals(name: str, family: str, meta: str, split: str, topk: int | None, what: str) -> Product:
    member = f"{family}/inference/{meta}"
    return Product(name, f"experiments/proposals/{member}", member, Check("proposals", split=split, topk=topk), what)


def _propnet(name: str, path: str, arch: str, classes: int, what: str) -> Product:
    return Product(name, path, "", Check("propnet", arch=arch, classes=classes), what)


RELEASES: tuple[Release, ...] = (
    Release("ytb_255_50_matchloss_epo13", "dmmnet_ytb_255_50_matchloss_epo13.tar.gz",
            (f"{_TORONTO}/dmm/models/dmmnet_ytb_255_50_matchloss_epo13.tar.gz",), "experiments/dmmnet",
            (_dmmnet("ytb_255_50_matchloss_epo13", "ytb_255_50_matchloss_epo13/epo13_iter01640", "eval",
                     "DMM-Net ResNet-50, train3k, match loss, epoch 13 (val200 J 0.611)"),)),
    Release("ytb_255_50", "dmmnet_ytb_255_50.tar.gz", (f"{_TORONTO}/dmm/models/dmmnet_ytb_255_50.tar.gz",),
            "experiments/dmmnet",
            (_dmmnet("ytb_255_50", "ytb_255_50/epo08_iter01640", "eval",
                     "DMM-Net ResNet-50, train3k, no match loss, epoch 8 (val200 J 0.600)"),)),
    Release("online_ytb", "dmmnet_online_ytb.tar.gz", (f"{_TORONTO}/dmm/models/dmmnet_online_ytb.tar.gz",),
            "experiments/dmmnet",
            (_dmmnet("online_ytb", "online_ytb/epo101", "eval_testdev",
                     "DMM-Net ResNet-101, online-trained on the valid first frames (G 0.579)"),)),
    Release("ytb_r101_epo01", "", (), "experiments/dmmnet",
            (_dmmnet("ytb_r101_epo01", "ytb_train_x101/epo01_iter01640", "online",
                     "DMM-Net ResNet-101 after 1 epoch on train3k, with its optimizer states (start of "
                     "online training)", optimizers=True),),
            page=f"{_ONEDRIVE}/:u:/g/personal/xzengaf_connect_ust_hk/"
                 "ESmFqlodogNLrEIMt0ve84IBAOVokxY5HTDG3YMVQ5dzbg?e=6K4VY2",
            note="a OneDrive file of unknown name: unpack it so that the folder holds trainer.pt (or "
                 "encoder.pt, decoder.pt, enc_opt.pt, dec_opt.pt)"),
    Release("rvos_one_shot_youtubevos", "one-shot-model-youtubevos.zip",
            ("https://imatge.upc.edu/web/sites/default/files/projects/segmentation/public_html/"
             "rvos-pretrained-models/one-shot-model-youtubevos.zip",), "experiments/dmmnet/pretrained_rvos",
            (Product("rvos_one_shot_youtubevos", "experiments/dmmnet/pretrained_rvos/one-shot-model-youtubevos",
                     "one-shot-model-youtubevos", Check("rvos", config="train_r101"),
                     "RVOS one-shot YouTube-VOS model (start of the ResNet-101 stage)"),)),
    Release("proposals_ytb_train", "proposals_ytb_train.tar.gz",
            (f"{_TORONTO}/dmm/proposals/proposals_ytb_train.tar.gz", f"{_TORONTO}/proposals_ytb_train.tar.gz"),
            "experiments/proposals",
            (_proposals("proposals_ytb_train", "ytb_train", "youtubevos_val200_meta", "trainval", None,
                        "val200 proposals of the fine-tuned proposal net (evaluation)"),)),
    Release("feature_coco81", "feature_coco81.tar.gz", (f"{_TORONTO}/feature_coco81.tar.gz",),
            "experiments/proposals",
            (_proposals("feature_coco81/train3k", "coco81", "youtubevos_train3k_meta", "train", 50,
                        "train3k proposals of the COCO X-101 Mask R-CNN (training)"),
             _proposals("feature_coco81/val200", "coco81", "youtubevos_val200_meta", "trainval", 50,
                        "val200 proposals of the COCO X-101 Mask R-CNN (validation in training)"),
             _proposals("feature_coco81/testdev_online", "coco81", "youtubevos_testdev_online_meta",
                        "train_testdev_ot", 90, "online-set proposals of the COCO X-101 Mask R-CNN "
                        "(online training)"))),
    Release("proposals_ytb_ot", "proposals_ytb_ot.tar.gz", (f"{_TORONTO}/dmm/proposals/proposals_ytb_ot.tar.gz",),
            "experiments/proposals",
            (_proposals("proposals_ytb_ot", "ytb_ot", "youtubevos_testdev_meta", "valid", None,
                        "valid proposals of the online-trained proposal net (test-dev)"),)),
    Release("propnet_coco_x101", "model_final.pkl",
            ("https://dl.fbaipublicfiles.com/detectron/36761843/12_2017_baselines/"
             "e2e_mask_rcnn_X-101-32x8d-FPN_1x.yaml.06_35_59.RZotkLKI/output/train/"
             "coco_2014_train%3Acoco_2014_valminusminival/generalized_rcnn/model_final.pkl",),
            "experiments/pretrained",
            (_propnet("propnet_coco_x101", "experiments/pretrained/e2e_mask_rcnn_X-101-32x8d-FPN_1x.pkl",
                      "legacy_x101_32x8d_fpn", 81, "Detectron COCO Mask R-CNN X-101-32x8d FPN (training proposals)"),)),
    Release("propnet_join_ytb_bin", "model_0172500.pth", (), "experiments/propnet/join_ytb_bin",
            (_propnet("propnet_join_ytb_bin", "experiments/propnet/join_ytb_bin/model_0172500.pth",
                      "legacy_x101_32x8d_fpn", 2, "binary proposal net, COCO + YouTube-VOS (evaluation proposals)"),),
            page=f"{_ONEDRIVE}/:f:/g/personal/xzengaf_connect_ust_hk/"
                 "EgsxOMu7TQFFiqOI5GfyFBAB2BE86dwD8RHryapUTyAf1w?e=LLzawx"),
    Release("propnet_online_ytb", "model_0225000.pth", (), "experiments/propnet/online_ytb",
            (_propnet("propnet_online_ytb", "experiments/propnet/online_ytb/model_0225000.pth",
                      "legacy_x101_32x8d_fpn", 2, "binary proposal net, online-trained (test-dev proposals)"),),
            page=f"{_ONEDRIVE}/:f:/g/personal/xzengaf_connect_ust_hk/"
                 "EqwYsSIjYtNKvAwZZaruSv4Bxgor3HUBTWvT2zunzq_jfA?e=AsSWIG"),
)

#: ``fetch --for PURPOSE``: the products each README workflow needs
PURPOSES: dict[str, tuple[str, ...]] = {
    "eval-r50": ("ytb_255_50_matchloss_epo13", "ytb_255_50", "proposals_ytb_train"),
    "train": ("feature_coco81/train3k", "feature_coco81/val200"),
    "train-r101": ("rvos_one_shot_youtubevos", "feature_coco81/train3k", "feature_coco81/val200"),
    "online": ("ytb_r101_epo01", "feature_coco81/testdev_online"),
    "submit": ("online_ytb", "proposals_ytb_ot"),
}


@dataclass(frozen=True)
class Zoo:
    """A set of releases, looked up by name (tests build their own)."""

    releases: tuple[Release, ...] = RELEASES
    purposes: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(PURPOSES))

    def products(self) -> list[tuple[Release, Product]]:
        return [(r, p) for r in self.releases for p in r.products]

    def names(self) -> list[str]:
        return [p.name for _, p in self.products()]

    def select(self, names: list[str]) -> list[tuple[Release, Product]]:
        """The products named (a release's name selects all of its products), in zoo order."""
        chosen: set[str] = set()
        for name in names:
            hits = [p.name for r, p in self.products() if name in (p.name, r.name)]
            if not hits:
                raise ConfigError(f"unknown file {name!r}; python -m dmm.zoo list names them: "
                                  f"{', '.join(self.names())}")
            chosen.update(hits)
        return [(r, p) for r, p in self.products() if p.name in chosen]

    def purpose(self, purpose: str) -> list[str]:
        if purpose not in self.purposes:
            raise ConfigError(f"unknown --for {purpose!r}; one of {', '.join(self.purposes)}")
        return list(self.purposes[purpose])
