"""Run, track and reproduce LoRA training experiments on kohya-ss sd-scripts."""

__version__ = "0.1.0"
