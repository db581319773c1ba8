"""The embedded procedural world: seeded indoor rooms, labelled objects, handheld scans, a ray caster.

numpy only, so generator processes start fast; ``psfm.worlds.generate`` writes it as scene shards.
"""

from psfm.worlds.sampler import WorldConfig, sample_scene
from psfm.worlds.scene import Camera, OrientedBox, Room, Scene, SceneObject

__all__ = ["Camera", "OrientedBox", "Room", "Scene", "SceneObject", "WorldConfig", "sample_scene"]
