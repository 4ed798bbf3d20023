"""The report's Phase 2 table: options A, B and C side by side, with the convergence and memory columns."""

from __future__ import annotations

from foresight_lib.adapters.recon import phase2_verdicts
from foresight_lib.params import Phase2Criteria
from foresight_lib.report.markdown import phase2_table
from foresight_lib.report.summary import adapter_summary

MEAN = {"mean": 0.5, "ci95": [0.4, 0.6]}
DETECTION = {
    "bbox_iou": 0.55,
    "bbox_iou_ci": [0.5, 0.6],
    "map50_class_agnostic": 0.3,
    "map50_class_agnostic_ci": [0.2, 0.4],
}


def _recon(steps: int | None, diverged: bool) -> dict:
    record = {
        "steps_to_best": steps,
        "diverged": diverged,
        "reason": "training loss nan at step 3" if diverged else None,
    }
    return {
        "adapter": {"detection": DETECTION, "lpips": None, "psnr": MEAN, "ssim": MEAN},
        "phase2": phase2_verdicts(0.55, None, 1_000, record, Phase2Criteria()),
        "cka": {},
        "detector": "px/dense",
        "ceiling": {"detection": DETECTION, "lpips": None, "psnr": MEAN, "ssim": MEAN, "lpips_reason": "no weights"},
        "original": {"detection": DETECTION},
    }


def _train(option: str, **extra) -> dict:
    memory = {"device": "cpu", "precision": "float32", "activation_bytes": 3 * 2**20, "peak_allocated_bytes": None}
    return {"option": option, "explained": {"test": 0.2}, "memory": memory, **extra}


def test_rows_per_option_with_convergence_and_the_learned_weights():
    recon = {
        "z_multi": _recon(120, False),
        "a_merger": _recon(60_000, False),
        "b_dual": _recon(None, True),
        "c_single": _recon(40, False),
    }
    training = {
        "z_multi": _train("C", point_weights={"vit_l7": 0.25, "vit_l15": 0.75}),
        "a_merger": _train("post-merge"),
        "b_dual": _train("B"),
        "c_single": _train("A"),
    }
    lines = phase2_table(recon, training)
    rows = [line for line in lines[2:] if line.startswith("| `")]
    assert [r.split(" | ")[0] for r in rows] == ["| `c_single`", "| `b_dual`", "| `z_multi`", "| `a_merger`"]
    assert [r.split(" | ")[1] for r in rows] == ["A", "B", "C", "post-merge"]
    assert "| target: 40 steps |" in rows[0] and "| acceptable: 60,000 steps |" in rows[3]
    assert "| fail: divergent (training loss nan at step 3) |" in rows[1] and rows[1].endswith("| fail |")
    assert "activations 3.0 MiB/step (cpu, float32; no allocator peak)" in rows[0]
    assert "Learned point weights of `z_multi` (softmax, sum 1): `vit_l7` 0.250, `vit_l15` 0.750." in lines
    assert adapter_summary(recon["c_single"])["steps_to_best"] == 40
    assert "steps_to_best" not in adapter_summary(recon["b_dual"])
