"""Spatial QA: 3D facts of scenes (ground truth or lifted from depth + masks), templated questions with
exact answers, exports for VLM training, and scoring.

numpy only at import (webdataset is loaded when shards are read). Entry points:
``generate_questions(facts, GenerationConfig())``, ``lift_scene(...)``, ``score_all(questions, predictions)``,
and the ``psfm qa`` / ``psfm eval`` commands. See ``docs/qa.md``.
"""

from psfm.qa.config import GenerationConfig, Margins
from psfm.qa.facts import CameraFact, ObjectFact, SceneFacts
from psfm.qa.generate import generate_questions
from psfm.qa.question import Answer, Question, Skip, Spec
from psfm.qa.scoring import score_all

__all__ = [
    "Answer",
    "CameraFact",
    "GenerationConfig",
    "Margins",
    "ObjectFact",
    "Question",
    "SceneFacts",
    "Skip",
    "Spec",
    "generate_questions",
    "score_all",
]
