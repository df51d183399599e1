"""`bench perf loop` (P1): the hand-written minimal loop must train exactly what bench's loop
trains — same initialisation, batches, warm-up and steps — or the time ratio would compare
different work. Timings themselves are benchmarks (docs/BENCHMARKS.md), not tests."""

import json

import pytest
import torch
from conftest import write_fashion_dir

from bench.compose import compose_config
from bench.perf.loop import bench_loop, minimal_loop
from bench.runner.build import build_task, resolve_device


@pytest.mark.parametrize("overrides", [
    ["task=logreg", "optimizer=adamw", "steps=25"],
    ["task=fashion_mnist_tiny", "optimizer=sgd", "optimizer.momentum=0.9", "steps=6", "eval_every=3"],
])
def test_minimal_loop_trains_what_bench_trains(tmp_path, overrides):
    if "task=fashion_mnist_tiny" in overrides:  # generated images in the real format: no install needed
        write_fashion_dir(tmp_path / "fm")
        overrides = [*overrides, f"task.data_dir={tmp_path / 'fm'}"]
    cfg = compose_config([*overrides, "device=cpu", f"runs_root={tmp_path}", "progress=off"])
    summary = bench_loop(cfg)
    task = build_task(cfg, resolve_device("cpu"))
    seconds, model = minimal_loop(cfg, task, torch.device("cpu"))
    assert seconds > 0 and summary["steps"] == cfg.steps
    with torch.no_grad():
        model.eval()
        mine = task.evaluate(model)
    assert mine[task.metric] == summary["final"][task.metric]
    assert mine["val/loss"] == pytest.approx(summary["final"]["val/loss"], rel=1e-6)


def test_perf_loop_command(bench_cli):
    res = bench_cli("perf", "loop", "--case", "logreg", "--repeats", "1", "steps=20", "--format", "json")
    assert res.code == 0, res.output
    case = json.loads(res.stdout)["cases"][0]
    assert case["case"] == "logreg" and case["steps"] == 20 and case["repeats"] == 1 and case["goal"] == 1.05
    assert case["ratio"] > 0 and case["meets_goal"] == (case["ratio"] <= 1.05)
    bad = bench_cli("perf", "loop", "--case", "nope")
    assert bad.code == 2 and "unknown perf loop case 'nope'" in bad.stderr


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_learning_rate_follows_the_schedule(bench_cli, tmp_path, schedule):
    """The loop skips LambdaLR.step() when the multiplier never changes (a P1 saving); the
    learning rate it logs must still be the schedule's at every step."""
    from conftest import only_run, read_run

    from bench.schedules import Constant, WarmupCosine

    res = bench_cli("run", "task=logreg", "optimizer=sgd", f"schedule={schedule}", "steps=20", "log_every=1",
                    f"runs_root={tmp_path}", "progress=off")
    assert res.code == 0, res.output
    _, lines = read_run(only_run(tmp_path))
    multiplier = Constant() if schedule == "constant" else WarmupCosine()  # the yaml's defaults
    # the lr logged at step k is the one the next update uses: base lr x multiplier(k)
    assert [x["lr"] for x in lines] == pytest.approx([0.1 * multiplier(x["step"], 20) for x in lines])


def test_perf_gpu_parts_run_at_a_tiny_size_on_cpu():
    """`bench perf gpu` needs a GPU; its in-process parts run here at TINY so the script cannot
    rot. The DDP smoke and trials-per-hour parts start subprocesses (torchrun, joblib workers):
    their commands are checked here, and the mechanisms under them by test_ddp and test_parallel."""
    from pathlib import Path

    from bench.perf import gpu

    report = gpu.run(("optimizers", "loop", "sharpness"), gpu.TINY, "cpu", echo=lambda line: None)
    text = report.markdown(gpu.header("cpu", "bench perf gpu"))
    assert "| lion |" in text and "| adamw |" in text and "| logreg |" in text
    assert "Sharpness probe" in text and ": ok;" in text and "step 4:" in text
    assert set(report.seconds) == {"optimizers", "loop", "sharpness"} and "torch " in text
    ddp = gpu.ddp_command(gpu.GPU, "cuda", Path("/r"))
    assert ddp[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1"] and "device=cuda" in ddp
    trials = gpu.trials_command("llama_tiny", 4, 64, 100, Path("/r"))
    assert {"launcher=parallel", "distributed.trials_per_gpu=4", "seed=range(0,64)", "task=llama_tiny"} <= set(trials)


def test_perf_gpu_refuses_without_a_gpu(bench_cli):
    res = bench_cli("perf", "gpu")
    assert res.code == 2 and "needs a CUDA GPU" in res.stderr
