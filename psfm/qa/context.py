"""Per-scene lookups shared by every template: who can be named, who is seen where, the margins.

An object can be named only by a description that picks it out alone: "the red crate" is used
only when no other object in the scene is a red crate (REFERENCE §2: referents must be unique).
Objects that share a label, lack a colour, or are never seen are left out of every question, and
counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from psfm.qa.config import GenerationConfig, Margins
from psfm.qa.facts import ObjectFact, SceneFacts
from psfm.qa.reasons import SkipLog


def describe(obj: ObjectFact) -> str:
    """``"the red crate"``: how questions name an object."""
    return f"the {obj.color} {obj.category}" if obj.color else f"the {obj.category}"


@dataclass
class SceneContext:
    """What templates look up about one scene.

    Attributes:
        facts: the scene's facts.
        margins: ambiguity margins.
        named: instance id -> description, for objects that can be named uniquely and were seen.
        visible: view index -> ids of named objects seen in that view (without masks: centre inside the image).
        min_pixels: pixels an object must cover in a view to count as seen there.
    """

    facts: SceneFacts
    margins: Margins
    named: dict[int, str] = field(default_factory=dict)
    visible: dict[int, list[int]] = field(default_factory=dict)
    min_pixels: int = 1

    @property
    def num_views(self) -> int:
        return len(self.facts.cameras) or max((len(o.pixels_per_view) for o in self.facts.objects), default=0)

    def obj(self, instance_id: int) -> ObjectFact:
        found = self.facts.object(instance_id)
        if found is None:
            raise KeyError(f"{self.facts.scene_id}: no object {instance_id}")
        return found

    def first_view(self, instance_id: int) -> int | None:
        """First view (capture order) showing the object, None when never seen or visibility is unknown."""
        pixels = self.obj(instance_id).pixels_per_view
        seen = [v for v, n in enumerate(pixels) if n >= self.min_pixels]
        return seen[0] if seen else None


def build_context(facts: SceneFacts, config: GenerationConfig, skips: SkipLog) -> SceneContext:
    """Resolve names and visibility once per scene, counting every object left out and why."""
    if facts.cameras:
        area = facts.cameras[0].height * facts.cameras[0].width
    elif facts.masks:
        area = int(np.prod(facts.masks[0].shape))
    else:
        area = 0
    min_pixels = max(config.min_visible_pixels, int(np.ceil(config.min_visible_fraction * area)))
    labels = Counter(o.label for o in facts.objects)
    context = SceneContext(facts, config.margins, min_pixels=min_pixels)
    num_views = context.num_views
    for obj in facts.objects:
        if obj.color is None:
            skips.add("object_without_colour", f"{facts.scene_id}: {obj.category}")
        elif labels[obj.label] > 1:
            skips.add("duplicate_label", f"{facts.scene_id}: {labels[obj.label]} x {describe(obj)}")
        elif obj.pixels_per_view and max(obj.pixels_per_view) < min_pixels:
            skips.add("object_never_seen", f"{facts.scene_id}: {describe(obj)}")
        else:
            context.named[obj.instance_id] = describe(obj)
    for view in range(num_views):
        context.visible[view] = [i for i in context.named if _seen(context.obj(i), facts, view, min_pixels)]
    return context


def _seen(obj, facts: SceneFacts, view: int, min_pixels: int) -> bool:
    """Seen in ``view``: by its mask pixels, or, without masks (a box file with no instance ids), when
    its box centre lies in front of the camera and inside the image (occlusion is then unknown)."""
    if obj.pixels_per_view:
        return obj.pixels_per_view[view] >= min_pixels
    if view >= len(facts.cameras):
        return True
    camera = facts.cameras[view]
    local = np.linalg.inv(camera.cam_to_world) @ np.append(obj.center, 1.0)
    if local[2] <= 0:
        return False
    u, v, _ = camera.intrinsics @ (local[:3] / local[2])
    return 0 <= u < camera.width and 0 <= v < camera.height
