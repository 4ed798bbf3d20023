"""Metrics people can read: `dvc metrics show` prints short lines, and two points compare side by side."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dvc.compare import metrics_table
from tabulate import tabulate
from test_report_real import _real_run

from foresight_lib.compare import compare
from foresight_lib.compare import main as compare_main
from foresight_lib.report.build import build_report, decision_metrics

ROOT = Path(__file__).resolve().parents[1]
MAX_LINE = 200


def test_dvc_metrics_show_prints_lines_under_200_characters():
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    res = subprocess.run(["dvc", "metrics", "show"], cwd=ROOT, capture_output=True, text=True, env=env, check=True)
    lines = res.stdout.splitlines()
    assert lines and max(len(line) for line in lines) < MAX_LINE, res.stdout
    # The widest record the decision can write (a long point name, the longest outcome), as DVC tabulates it.
    deciding = {"point": "dinov2_l11_registers_random", "head": "dense"}
    deciding |= {k: -0.123456789 for k in ("bbox_iou", "bbox_iou_lo", "bbox_iou_hi", "map50", "map50_lo")}
    deciding |= {"selectivity": -0.123456789, "selectivity_lo": -0.123456789}
    record = decision_metrics({"decision": "INCONCLUSIVE", "deciding": deciding})
    table = metrics_table({"workspace": {"data": {"metrics/decision.json": {"data": record}}}})
    text = tabulate(list(table), table.keys(), tablefmt="plain", disable_numparse=True, missingval="-")
    assert max(len(line) for line in text.splitlines()) < MAX_LINE, text


def test_two_points_side_by_side(tmp_path, capsys):
    params, dirs = _real_run(tmp_path)
    build_report(params, **{f"{k}_dir": v for k, v in dirs.items()})
    summary_path = dirs["metrics"] / "summary.json"
    text = compare(json.loads(summary_path.read_text()), "vit_l7", "merger")
    lines = {line.split("  ")[0]: line for line in text.splitlines()}
    assert "vit_block, layer 3" in lines["kind, layer"] and lines["kind, layer"].rstrip().endswith("merger")
    row = lines["linear: bbox IoU (chance)"]
    assert row.count("0.350 [0.300, 0.400] (0.050)") == 2 and row.endswith("+0.000")
    assert lines["linear: shuffled control IoU"].split()[-1] == "+0.000"
    assert compare_main(["vit_l7", "pixels", "--summary", str(summary_path)]) == 0
    assert "pixels - vit_l7" in capsys.readouterr().out
    assert compare_main(["vit_l7", "nope", "--summary", str(summary_path)]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(
            "error: point 'nope' is not in the summary (points: merger, oracle, pixels, vit_l7, vit_l7_random)"
        )
        and len(err.splitlines()) == 1
    )


def test_compare_without_a_summary_says_how_to_get_one(tmp_path, capsys):
    assert compare_main(["a", "b", "--summary", str(tmp_path / "summary.json")]) == 2
    assert "run `dvc repro`" in capsys.readouterr().err
