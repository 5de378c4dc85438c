"""Sequence-to-sequence models behind one interface (:mod:`nmt.models.interface`)."""
