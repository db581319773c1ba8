"""Adapters that inject the frozen encoder's latents into a vision-language model.

Not built yet: comes after pretraining (issue #3). Nothing here is importable API so far.
"""
