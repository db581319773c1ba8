"""Lifting accuracy and QA generation rate on the procedural world (issue #4 goals).

For every scene: render it, lift boxes from depth + instance masks + cameras given in the first
camera's frame (so gravity must be recovered), once with the true depth and once with depth
corrupted by multiplicative Gaussian noise per pixel plus flying pixels at every depth edge, and
compare with the true boxes and with the answers the true boxes give.

Reported: mean 3D IoU over every object the views show (lost objects count 0; strict, and with
round objects' arbitrary yaw factored out), IoU over the objects kept and the share kept, and
answer agreement (labels: exact; numbers: MRA) over the questions the true facts answer, with the
questions the lifted facts cannot answer counted wrong, and apart. Goals: IoU >= 0.7 clean,
>= 0.5 noisy; agreement >= 90 %, MRA >= 0.8. Also: questions/s of generation from true facts.

    python benchmarks/qa_lifting.py [--scenes 20] [--size 256] [--views 12] [--noise 0.05]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import time  # noqa: E402

import numpy as np  # noqa: E402

from psfm.qa.config import GenerationConfig  # noqa: E402
from psfm.qa.generate import generate_questions  # noqa: E402
from psfm.qa.lifting.config import LiftingConfig  # noqa: E402
from psfm.qa.lifting.evaluate import (  # noqa: E402
    AgreementReport,
    IouReport,
    answer_agreement,
    lifted_iou,
    round_instances,
    scene_labels,
    world_inputs,
)
from psfm.qa.lifting.pipeline import lift_scene  # noqa: E402
from psfm.qa.reasons import SkipLog  # noqa: E402
from psfm.qa.sources import facts_from_scene  # noqa: E402
from psfm.worlds import WorldConfig, sample_scene  # noqa: E402
from psfm.worlds.render import render_scene  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--views", type=int, default=12)
    parser.add_argument("--noise", type=float, default=0.05)
    parser.add_argument("--split", default="val")
    parser.add_argument("--erosion", type=int, default=None, help="override LiftingConfig.erosion_px")
    parser.add_argument(
        "--no-gate", action="store_true", help="keep every object with enough points (no confidence gate)"
    )
    args = parser.parse_args()
    world = WorldConfig(views_per_scene=args.views, height=args.size, width=args.size)
    lifting = LiftingConfig()
    if args.erosion is not None:
        lifting.erosion_px = args.erosion
    if args.no_gate:
        lifting.keep_confidence = lifting.drop_confidence = 0.0
    generation = GenerationConfig()
    min_pixels = max(generation.min_visible_pixels, int(np.ceil(generation.min_visible_fraction * args.size**2)))
    settings = {"clean": 0.0, f"noisy ({100 * args.noise:.0f} % + flying)": args.noise}
    ious = {name: IouReport() for name in settings}
    agreement = {name: AgreementReport() for name in settings}
    skips = {name: SkipLog() for name in settings}
    lift_seconds = dict.fromkeys(settings, 0.0)
    questions, generation_seconds = 0, 0.0
    for index in range(args.scenes):
        scene = sample_scene(index, world, args.split)
        views = render_scene(scene)
        truth = facts_from_scene(scene, views)
        start = time.perf_counter()
        questions += len(generate_questions(truth, generation))
        generation_seconds += time.perf_counter() - start
        for name, noise in settings.items():
            inputs, _ = world_inputs(scene, views, noise, np.random.default_rng(index))
            start = time.perf_counter()
            lifted = lift_scene(scene.scene_id, inputs, scene_labels(scene), lifting, "gt", skips[name])
            lift_seconds[name] += time.perf_counter() - start
            if lifted is None:
                continue
            lifted_iou(truth, lifted, min_pixels, ious[name], round_instances(scene))
            answer_agreement(truth, lifted, generation, agreement[name])

    print(f"qa lifting: {args.scenes} {args.split} scenes x {args.views} views at {args.size}x{args.size}, {lifting}")
    rate = questions / generation_seconds
    print(f"  question generation from true facts: {rate:.0f} questions/s ({questions} questions)")
    for name in settings:
        iou, agree = ious[name], agreement[name]
        print(f"  {name}:  {1e3 * lift_seconds[name] / args.scenes:.0f} ms/scene lifting")
        print(
            f"    3D IoU, every seen object (lost = 0): {iou.mean:.3f} strict, "
            f"{iou.symmetric_mean:.3f} round-yaw-free; kept {100 * iou.recall:.0f} % of {len(iou.ious)} objects, "
            f"IoU over kept {iou.matched_symmetric_mean:.3f}"
        )
        print(
            f"    answers vs true boxes: labels {100 * agree.label_agreement:.1f} %, "
            f"numbers MRA {agree.number_mra:.3f} (unanswerable = wrong); "
            f"where lifted facts answer ({100 * agree.answered_share:.0f} %): "
            f"labels {100 * agree.answered_label_agreement:.1f} %, MRA {agree.answered_number_mra:.3f}"
        )
        by_category = ", ".join(f"{c} {IouReport.average(v):.2f}" for c, v in sorted(iou.by_category.items()))
        print(f"    IoU by category: {by_category}")
        print(f"    skipped: {skips[name].as_dict()}")


if __name__ == "__main__":
    main()
