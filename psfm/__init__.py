"""psfm: Predictive Spatial Field Modeling.

Self-supervised spatial encoders pretrained from unposed multi-view images, the data they train on
(the embedded procedural world and scene shards), and the tools around them.
"""

__version__ = "0.1.0"
