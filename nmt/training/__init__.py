"""The design card's training step: loss, LR schedules, checkpoints and the trainer.

Submodules are imported directly (``from nmt.training.trainer import train``) so that reading a
checkpoint does not pull in the data pipeline.
"""
