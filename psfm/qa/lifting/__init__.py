"""Lifting: metric depth + instance masks + cameras -> gravity-aligned boxes (``lift_scene``).

See ``pipeline.py`` for the stages and ``docs/qa.md`` for measured accuracy.
"""

from psfm.qa.lifting.config import LiftingConfig
from psfm.qa.lifting.pipeline import lift_scene
from psfm.qa.lifting.views import ViewInput

__all__ = ["LiftingConfig", "ViewInput", "lift_scene"]
