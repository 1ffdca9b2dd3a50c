from pathlib import Path

from setuptools import find_packages, setup

requirements = [
    line.strip()
    for line in Path(__file__).with_name("requirements.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#") and line.strip() != "pytest"
]

setup(
    name="dmm",
    version="0.1.0",
    description="DMM-Net: Differentiable Mask-Matching Network for video object segmentation",
    package_dir={"": "src"},
    packages=find_packages("src", include=["dmm", "dmm.*"]),
    package_data={"dmm.config": ["yaml/*.yaml"]},
    python_requires=">=3.10",
    install_requires=requirements,
)
