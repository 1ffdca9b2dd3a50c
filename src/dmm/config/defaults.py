"""Default configuration: every number in DESIGN.md lives here, once.

Use :func:`get_cfg_defaults` for a fresh copy, and :func:`dmm.config.load_config` to merge a
yaml file and ``KEY VALUE`` overrides on top of it.
"""

from yacs.config import CfgNode as CN

_C = CN()
_C.OUTPUT_DIR = "experiments/dmmnet/default"
_C.SEED = 0
_C.DEVICE = "auto"  # "auto" (cuda when available), "cpu", "cuda", "cuda:1", ...

# ----------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------
_C.DATA = CN()
_C.DATA.DATASET = "youtubevos"  # "youtubevos" (also the synthetic set) or "davis"
_C.DATA.ROOT = "datasets/youtubeVOS"
# Split meta files written by src/tools/make_splits.py (train3k / val200 / test271).
_C.DATA.SPLIT_DIR = "data/splits/youtubevos"
_C.DATA.TRAIN_SPLIT = "train"  # train3k
_C.DATA.EVAL_SPLIT = "trainval"  # val200
_C.DATA.LMDB = ""  # optional frame cache made by src/tools/make_lmdb.py
_C.DATA.INPUT_H = 255
_C.DATA.INPUT_W = 448
# Frame resize to the input size: "nearest" (2019: PIL's default filter in its Pillow 6.1) or
# "bilinear". Annotations are always resized by nearest neighbour.
_C.DATA.IMAGE_RESIZE = "nearest"
_C.DATA.MEAN = [0.485, 0.456, 0.406]
_C.DATA.STD = [0.229, 0.224, 0.225]
_C.DATA.LENGTH_CLIP = 3
_C.DATA.MAX_OBJECTS = 5
# Later frames of a training clip: the next frame, or with this probability a frame drawn
# uniformly from the whole video (2019 dataset.py).
_C.DATA.RANDOM_FRAME_PROB = 0.5
# Every frame of a clip, the first included, drawn uniformly (2019: the online split).
_C.DATA.ALL_FRAMES_RANDOM = False
_C.DATA.NUM_WORKERS = 2
_C.DATA.AUGMENT = True
_C.DATA.ROTATION = 10.0  # degrees
_C.DATA.TRANSLATE = 0.1  # fraction of the height (rows) and the width (columns)
_C.DATA.SHEAR = 0.1  # degrees: the 2019 code's unit (nearly no shear)
_C.DATA.SCALE = [0.7, 1.4]  # zoom, drawn independently for rows and columns
_C.DATA.HFLIP_PROB = 0.5  # one flip decision per clip
# Flip the proposals with a flipped clip. The 2019 code did not (a bug): False reproduces it.
_C.DATA.FLIP_PROPOSALS = True
_C.DATA.SKIP_EMPTY_FIRST = True  # clip starts whose frame holds none of the video's objects are left out
# A clip whose first frame's objects have a union box with a short side under this many pixels
# is replaced by another clip drawn at random (2019 dataset.py); 0 turns the rule off.
_C.DATA.MIN_SHORT_SIDE = 3

# ----------------------------------------------------------------------------------------
# Proposals
# ----------------------------------------------------------------------------------------
_C.PROPOSALS = CN()
# Per-video proposal stores (one <video>.pth each) for the train and eval splits.
_C.PROPOSALS.TRAIN_DIR = "experiments/proposals/coco81/inference/youtubevos_train3k_meta/videos_top50"
# the evaluation proposals as 2019's evaluator read them: every proposal of the raw predictions.pth
# (src/tools/reduce_pth_size_by_videos.py PREDICTIONS trainval all)
_C.PROPOSALS.EVAL_DIR = "experiments/proposals/ytb_train/inference/youtubevos_val200_meta/videos_all"
_C.PROPOSALS.MASK_THRESHOLD = 0.4
_C.PROPOSALS.NMS_IOU = 0.4
_C.PROPOSALS.TOPK = 50
# Which TOPK of a frame's NMS survivors are matched, in which column order: "stored" (2019:
# maskrcnn-benchmark's NMS returns survivors in ascending index order and the first TOPK are
# kept, so a raw predictions.pth, stored in class then RPN order, keeps its first 50 survivors)
# or "score" (the TOPK best-scored, by decreasing score). Equal on files sorted by score.
_C.PROPOSALS.KEEP_ORDER = "stored"
# A frame whose stored proposal list is empty, at inference: "split_last" (2019 model_encoder.py:
# the proposals of the split's last frame, the last entry of its predictions.pth, are used
# instead) or "empty" (the frame is matched against no proposal: only the padding column).
_C.PROPOSALS.EMPTY_FRAME = "split_last"

# ----------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------
_C.MODEL = CN()
_C.MODEL.BACKBONE = "resnet50"  # resnet18 / resnet34 / resnet50 / resnet101
# "imagenet": torchvision ImageNet weights from WEIGHTS_DIR or torchvision's cache;
# "none": random init; any other value: a path to a state-dict file for the backbone.
_C.MODEL.PRETRAINED = "imagenet"
_C.MODEL.WEIGHTS_DIR = "experiments/pretrained"
# Which of torchvision's ImageNet weights "imagenet" means: "V1" (2019: resnet50(pretrained=True);
# files resnet50-0676ba61.pth or 2019's resnet50-19c8e357.pth) or "V2" (a newer recipe, resnet50
# and resnet101 only). A missing V1 file is never replaced by a V2 one.
_C.MODEL.IMAGENET_WEIGHTS = "V1"
_C.MODEL.SKIP_CHANNELS = [128, 128, 64, 32]  # levels 5, 4, 3, 2
_C.MODEL.PROP_MID_CHANNELS = [128, 128, 64, 32]  # levels 5, 4, 3, 2
_C.MODEL.PROP_CHANNELS = 128
_C.MODEL.ROI_SIZE = 14
_C.MODEL.ROI_SAMPLING_RATIO = 2
_C.MODEL.ROI_ALIGNED = False  # maskrcnn-benchmark's convention
# How the spatial mean of each ROIAlign is computed: "separable" (the same numbers through two
# small matrix products, faster on a CPU), "torchvision" (ops.roi_align, then mean; faster on
# CUDA) or "auto" (torchvision on CUDA, separable on the CPU).
_C.MODEL.ROI_POOL = "auto"
_C.MODEL.HIDDEN_SIZE = 128
_C.MODEL.KERNEL_SIZE = 3
_C.MODEL.DECODER_CHANNELS = [128, 64, 32, 16]  # coarse to fine
_C.MODEL.IOU_WEIGHT = 0.3  # similarity = (1 - w) * cosine + w * IoU
_C.MODEL.IOU_MASK_THRESHOLD = 0.5
# Objects and slots. "legacy" (2019): object k lives in slot k - 1 (ids up to DATA.MAX_OBJECTS); the
# matching problem and the decoder take the first k slots, k = the number of valid templates
# (invalid templates among them zeroed); inference tracks the objects of the video's first
# annotated frame only. "all": every object its own slot, the matching and decoder take exactly
# the objects being tracked, and inference starts each object at its first appearance.
# (docs/faithfulness.md: they differ only for objects absent from the first annotated frame.)
_C.MODEL.OBJECTS = "legacy"
# Decoder gate convolutions: True = the mask channel split out and the work shared by the three
# mask runs done once (2-3x less decoder time; the same values up to float rounding, within the
# golden fixture's tolerance); False = three full convolutions per cell, the 2019 layout.
_C.MODEL.DECODER_SHARED_GATES = True
# The one mixed-precision switch: bfloat16 autocast for the backbone and necks, their features
# handed on in float32, in training and inference alike (runs on CUDA or CPU; only faster on
# CUDA); the matching layer, the losses and the decoder always run in float32. Off: float32 as
# in 2019. (Configs saved with the former SOLVER.AMP, an autocast over the whole training
# forward that nested with this one, still load: its True turns this on.)
_C.MODEL.AMP = False

# ----------------------------------------------------------------------------------------
# Matching layer
# ----------------------------------------------------------------------------------------
_C.MATCHING = CN()
# "dykstra" (the paper's relaxed layer), "hungarian" (optimal one-hot on the host, no gradient) or
# "sinkhorn" (entropic relaxation). The pairs with IMPLEMENTATION (below) that run: dykstra x
# exact | batched | triton, hungarian x exact, sinkhorn x batched; any other pair is a config
# error (dmm.config.keys.MATCHING_IMPLEMENTATIONS).
_C.MATCHING.METHOD = "dykstra"
_C.MATCHING.LR = 0.1
_C.MATCHING.TRAIN_MAX_ITER = 10  # 2019 dmm/configs/train.yaml
_C.MATCHING.TRAIN_PROJ_ITER = 5
_C.MATCHING.TEST_MAX_ITER = 40  # 2019 dmm/configs/eval.yaml
_C.MATCHING.TEST_PROJ_ITER = 5
# "exact": one problem at a time in float32 with the 2019 early exits (its bits on the same
# device); "batched": the padded batch at once, float64 sums, no host synchronisation;
# "triton": the batched computation in one fused kernel on CUDA, its gradient in one more (the
# CPU runs the batched path). docs/faithfulness.md gives how far they differ. Hungarian runs
# "exact" (one problem at a time), Sinkhorn "batched" (the padded batch at once).
_C.MATCHING.IMPLEMENTATION = "exact"
_C.MATCHING.TRAIN_KEEP_THRESHOLD = 0.01  # training keeps entries above this; test keeps row maxima
_C.MATCHING.SINKHORN_EPSILON = 0.05
_C.MATCHING.SINKHORN_ITER = 50

# ----------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------
_C.LOSS = CN()
_C.LOSS.MATCH_WEIGHT = 1.0
_C.LOSS.MATCHED_IOU_WEIGHT = 1.0  # 18 in online training
_C.LOSS.REFINED_IOU_WEIGHT = 1.0

# ----------------------------------------------------------------------------------------
# Optimisation and schedule
# ----------------------------------------------------------------------------------------
_C.SOLVER = CN()
_C.SOLVER.NECK_LR = 1e-3
_C.SOLVER.BACKBONE_LR = 1e-4
_C.SOLVER.DECODER_LR = 1e-3
_C.SOLVER.WEIGHT_DECAY = 1e-6
_C.SOLVER.EPOCHS = 15
_C.SOLVER.BATCH_SIZE = 4  # clips per batch-norm group (2019: per GPU)
# Batch-norm groups per optimisation step (2019: 4 GPUs x 4 clips = 16 clips a step, train-mode
# batch norm over each GPU's 4). A run on W processes runs BN_GROUPS / W groups each as
# accumulated micro-batches, so 1, 2 or 4 GPUs make the same updates; an epoch is
# floor(ceil(clips / BN_GROUPS) / BATCH_SIZE) steps (dmm.engine.batching).
_C.SOLVER.BN_GROUPS = 4
_C.SOLVER.MAX_ITERS_PER_EPOCH = -1  # -1: the whole epoch
_C.SOLVER.MAX_ITERS = -1  # -1: no global cap
_C.SOLVER.FINETUNE_AFTER = 3  # from this epoch on, feed own predictions half of the time
_C.SOLVER.OWN_PRED_PROB = 0.5
# The own-prediction coin: "step" (2019: one coin per frame for the whole step, the same for
# every batch-norm group, as the 2019 GPUs all drew it from the same seeded stream) or "group"
# (one coin per group).
_C.SOLVER.OWN_PRED_COIN = "step"
_C.SOLVER.GRAD_CLIP = 0.0  # 0: off (2019: none)
# How `python -m dmm.train --init CKPT` reads CKPT: "dmm" (a DMM-Net checkpoint of this project
# or the authors', every key) or "rvos" (2019 train_101.sh: the RVOS one-shot YouTube-VOS
# model's encoder.pt + decoder.pt, the keys both have; the prop necks keep their initialisation).
_C.SOLVER.INIT_WEIGHTS = "dmm"
# Also restore Adam's moments and learning rates from --init's checkpoint (2019 online training
# started with --resume from the offline checkpoint); it must hold optimizer state.
_C.SOLVER.INIT_OPTIMIZERS = False
# Run the encoder on frame 0 twice, for the templates and for its step (2019): the same
# outputs, batch-norm running statistics updated twice. False saves one encoder pass per clip.
_C.SOLVER.FRAME0_TWICE = True
# A checkpoint after every this many steps of an epoch (counted from the epoch's start, as 2019's
# batch_idx: 3000 > 1641 steps never fires, 2019 saved once an epoch); one is also written at the
# end of every epoch.
_C.SOLVER.CHECKPOINT_PERIOD = 3000
_C.SOLVER.KEEP_CHECKPOINTS = 3  # the newest this many are kept ...
_C.SOLVER.KEEP_EPOCHS = []  # ... and those written at the end of these epochs (0-based)
_C.SOLVER.LOG_PERIOD = 10
# TensorBoard scalars in <OUTPUT_DIR>/tensorboard (the 2019 trainer wrote them too):
# tensorboard --logdir experiments/
_C.SOLVER.TENSORBOARD = True

# ----------------------------------------------------------------------------------------
# Validation during training and inference
# ----------------------------------------------------------------------------------------
_C.VAL = CN()
_C.VAL.ENABLED = True
_C.VAL.NUM_VIDEOS = 20  # bounded J-mean check on the eval split
_C.VAL.PERIOD = 1  # every this many epochs (and after the last)

_C.TEST = CN()
_C.TEST.CHECKPOINT = ""
_C.TEST.OUTPUT_DIR = ""  # default: <OUTPUT_DIR>/eval/<EVAL_SPLIT>
_C.TEST.BATCH_VIDEOS = 1  # videos processed in lockstep
# Label maps: "input" (2019: argmax at the network input size, nearest-resized to the frame) or
# "frame" (probabilities resized bilinearly to the frame, then argmax; given masks at full size).
_C.TEST.LABELS_AT = "input"


def get_cfg_defaults() -> CN:
    """A fresh, mutable copy of the defaults."""
    return _C.clone()
