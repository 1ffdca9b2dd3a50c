#!/bin/sh
# The ResNet-101 stage of 2019 (its scripts/train/train_101.sh): DMM-Net with a ResNet-101 encoder,
# 2 epochs on YouTube-VOS train3k, starting from the RVOS one-shot YouTube-VOS model
# (src/dmm/config/yaml/train_r101.yaml). Its last checkpoint starts online training
# (scripts/train/train_online.sh, INIT_CKPT). Run from anywhere: sh scripts/train/train_r101.sh
# Extra arguments and the variables of scripts/train/train_load_prop.sh (NGPUS, DATA_ROOT, ...) work
# as there.
set -eu

# The RVOS model (encoder.pt + decoder.pt), from
# https://imatge.upc.edu/web/sites/default/files/projects/segmentation/public_html/rvos-pretrained-models/one-shot-model-youtubevos.zip
RVOS=${RVOS:-experiments/dmmnet/pretrained_rvos/one-shot-model-youtubevos}

REPO=$(CDPATH= cd -- "$(dirname -- "$0")/../.." && pwd)
CONFIG=${CONFIG:-train_r101} exec sh "$REPO/scripts/train/train_load_prop.sh" --init "$RVOS" "$@"
