"""psfm: Predictive Spatial Field Modeling.

Self-supervised spatial encoders pretrained from unposed multi-view images, the data they train on
(the embedded procedural world and scene shards), and the tools around them.
"""

__version__ = "0.1.0"


def load(path, device="cpu"):
    """Rebuild a frozen pretrained encoder from an export folder (see ``psfm.export.load``)."""
    from psfm.export import load as load_export

    return load_export(path, device)
