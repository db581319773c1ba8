"""Per-scene lookups shared by every template: who can be named, who is seen where, the margins.

An object can be named only by a description that picks it out alone (REFERENCE §2: referents must be
unique), judged against *every* annotated object, boxes or not:

* by its category alone when it is the only object of that category in the scene (VSI-Bench's rule:
  "the chair");
* by colour and category when its category repeats, every object of that category has a colour, and
  no other has its colour ("the red chair");
* never otherwise: a category that repeats without colours (``duplicate_category_without_colour``) or
  a colour that repeats within it (``duplicate_label``) leaves those objects out of every question, as
  does never being seen (``object_never_seen``); each is counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from psfm.qa.config import GenerationConfig, Margins
from psfm.qa.facts import ObjectFact, SceneFacts
from psfm.qa.reasons import SkipLog


def unique_name(obj: ObjectFact, facts: SceneFacts) -> tuple[str | None, str]:
    """``("the chair", "")`` or ``("the red chair", "")``, or ``(None, reason)`` when no name is unique."""
    same = facts.instances(obj.category)
    if len(same) == 1:
        return f"the {obj.category}", ""
    if any(other.color is None for other in same):
        return None, "duplicate_category_without_colour"
    if sum(other.color == obj.color for other in same) > 1:
        return None, "duplicate_label"
    return f"the {obj.color} {obj.category}", ""


@dataclass
class SceneContext:
    """What templates look up about one scene.

    Attributes:
        facts: the scene's facts.
        margins: ambiguity margins.
        named: instance id -> description, for objects that can be named uniquely and were seen.
        visible: view index -> ids of named objects seen in that view (without masks: centre inside the image).
        min_pixels: pixels an object must cover in a view to count as seen there.
        room_size_from_boxes: ``GenerationConfig.room_size_from_boxes``.
    """

    facts: SceneFacts
    margins: Margins
    named: dict[int, str] = field(default_factory=dict)
    visible: dict[int, list[int]] = field(default_factory=dict)
    min_pixels: int = 1
    room_size_from_boxes: bool = False

    @property
    def num_views(self) -> int:
        if self.facts.num_views:
            return self.facts.num_views
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
    context = SceneContext(
        facts, config.margins, min_pixels=min_pixels, room_size_from_boxes=config.room_size_from_boxes
    )
    num_views = context.num_views
    for obj in facts.objects:
        name, reason = unique_name(obj, facts)
        if name is None:
            count = len(facts.instances(obj.category))
            skips.add(reason, f"{facts.scene_id}: {count} x {obj.category}")
        elif obj.pixels_per_view and max(obj.pixels_per_view) < min_pixels:
            skips.add("object_never_seen", f"{facts.scene_id}: {name}")
        else:
            context.named[obj.instance_id] = name
    for view in range(num_views):
        context.visible[view] = [i for i in context.named if _seen(context.obj(i), facts, view, min_pixels)]
    return context


def _seen(obj, facts: SceneFacts, view: int, min_pixels: int) -> bool:
    """Seen in ``view``: by its mask pixels, or, without masks (a box file with no instance ids), when
    its box centre lies in front of the camera and inside the image (occlusion is then unknown). With
    neither masks nor a camera nothing says what a view shows, so nothing counts as seen there."""
    if obj.pixels_per_view:
        return obj.pixels_per_view[view] >= min_pixels
    if view >= len(facts.cameras):
        return False
    camera = facts.cameras[view]
    local = np.linalg.inv(camera.cam_to_world) @ np.append(obj.center, 1.0)
    if local[2] <= 0:
        return False
    u, v, _ = camera.intrinsics @ (local[:3] / local[2])
    return 0 <= u < camera.width and 0 <= v < camera.height
