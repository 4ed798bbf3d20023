"""Kill campaign: SIGKILL each stage at many points of its work, rerun it, and count how many resumed to the
uninterrupted result. The longer sibling of tests/test_kill.py (same harness: tests/killing.py).

Kill points: a resumable stage (frames, extract, latents) after each of 1 .. n-1 finished clips, plus ``--delays``
seconds later; the probe and the adapter (no per-clip resume) ``--delays`` seconds after their first logged epoch.
A kill that lands after the work was done (store renamed or outputs written, before the exit) is counted apart.

    python benchmarks/kill_campaign.py                      # every kill point once
    python benchmarks/kill_campaign.py --stages frames extract --delays 0 0.05 --out results.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from killing import CASES, ORDER, PROFILE, kill_and_resume, run_stage, write_params  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", nargs="+", default=list(ORDER), choices=ORDER)
    parser.add_argument("--delays", nargs="+", type=float, default=[0.0, 0.1], help="seconds after the trigger")
    parser.add_argument("--out", type=Path, help="write the counts and every kill as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)  # the killed children run with 2 threads too (tests/killing.py)
    n_clips = PROFILE["data"]["synthetic"]["n_clips"]
    kills, started = [], time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        reference, work = Path(tmp) / "reference", Path(tmp) / "work"
        write_params(reference), write_params(work)
        for name in ORDER:
            run_stage(CASES[name], reference)
            run_stage(CASES[name], work)  # the inputs of the later stages
        for name in args.stages:
            case = CASES[name]
            points = (
                [(u, d) for u in range(1, n_clips) for d in args.delays]
                if case.store
                else [(0, d) for d in args.delays]
            )
            for units, delay in points:
                try:
                    kills.append(
                        {
                            **kill_and_resume(case, reference, work, units, delay, must_kill=False),
                            "after_units": units,
                            "delay_s": delay,
                            "identical": True,
                        }
                    )
                except AssertionError as err:
                    kills.append(
                        {
                            "stage": name,
                            "after_units": units,
                            "delay_s": delay,
                            "killed": True,
                            "identical": False,
                            "error": str(err)[:500],
                        }
                    )
                    traceback.print_exc()
                    run_stage(case, work)  # leave finished inputs for the next kill
                print(json.dumps(kills[-1]), flush=True)
    counts = {
        name: {
            "kills": sum(k["killed"] for k in kills if k["stage"] == name),
            "identical": sum(k["killed"] and k["identical"] for k in kills if k["stage"] == name),
            "ended_before_the_kill": sum(not k["killed"] for k in kills if k["stage"] == name),
            "work_done_at_kill": sum(bool(k.get("work_done_at_kill")) for k in kills if k["stage"] == name),
        }
        for name in args.stages
    }
    result = {
        "machine": f"{platform.node()} ({platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads)",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "profile": PROFILE,
        "seconds": round(time.monotonic() - started),
        "counts": counts,
        "kills": kills,
    }
    print(json.dumps(counts, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
