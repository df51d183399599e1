"""DDP: two CPU processes on gloo, each on half of the global batch, follow the single-process loss
curve (same global batch) to 1e-6; only rank 0 writes the run directory."""

import math

from conftest import only_run, read_run

ARGS = ("task=logreg", "optimizer=adamw", "batch_size=64", "steps=40", "log_every=1", "eval_every=10",
        "device=cpu", "progress=off", "checkpoint_every=0")


def test_two_ranks_match_one_process(bench_cli, tmp_path):
    assert bench_cli("run", *ARGS, f"runs_root={tmp_path / 'one'}").code == 0
    res = bench_cli("run", *ARGS, "distributed.nproc=2", f"runs_root={tmp_path / 'two'}")
    assert res.code == 0, res.output
    one, one_lines = read_run(only_run(tmp_path / "one"))
    two, two_lines = read_run(only_run(tmp_path / "two"))
    assert two["status"] == "ok" and two["world_size"] == 2 and "world_size" not in one
    assert two["run_id"] == one["run_id"]  # the same experiment, spread over two processes
    assert [x["step"] for x in two_lines] == list(range(41))  # one writer: no line twice
    assert two["items_per_step"] == one["items_per_step"] == 64  # the global batch
    for a, b in zip(one_lines, two_lines, strict=True):
        for key in ("train/loss", "val/loss"):
            if key in a:
                assert math.isclose(a[key], b[key], rel_tol=0, abs_tol=1e-6), (a["step"], key, a[key], b[key])
