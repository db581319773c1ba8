"""Pretraining objectives: the PSFM feature-field decoder, its teachers, heads and losses.

Not built yet: delivered by issue #3 (PSFM pretraining). Nothing here is importable API so far.
"""
