"""SLURM through hydra-submitit-launcher: the presets compose, and a run preempted under
submitit (the preemption signal) checkpoints, is requeued and resumes, tested with submitit_local."""

import os
import signal
import subprocess
import sys
import time

from conftest import only_run, read_run

ARGS = ("task=logreg", "optimizer=sgd", "steps=2500", "log_every=50", "eval_every=500", "checkpoint_every=0",
        "progress=off")


def test_slurm_preset_composes_with_cluster_settings():
    from bench.sweep.launch import HydraSession

    session = HydraSession(["launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=4"])
    try:
        launcher = session.master.hydra.launcher
        assert launcher._target_.endswith("SlurmLauncher") and not session.in_process
        assert launcher.partition == "gpu" and launcher.gpus_per_node == 4
        assert launcher.signal_delay_s > 0 and launcher.max_num_timeout > 0 and launcher.array_parallelism > 0
    finally:
        session.close()


def test_preempted_submitit_job_requeues_and_resumes(bench_cli, tmp_path):
    root = tmp_path / "cluster"
    sweep = subprocess.Popen([sys.executable, "-m", "bench", "run", "-m", "launcher=submitit_local", *ARGS,
                              f"runs_root={root}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # the job is training
        metrics = next(root.glob("*/metrics.jsonl"), None)
        if metrics is not None and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    job_pid = int((metrics.parent / ".lock").read_text())
    os.kill(job_pid, signal.SIGUSR2)  # what SLURM sends (via submitit) before preemption or the time limit
    output = sweep.communicate(timeout=300)[0]
    assert sweep.returncode == 0, output

    run_dir = only_run(root)
    summary, lines = read_run(run_dir)
    assert summary["status"] == "ok" and len(summary["resumed_from"]) == 1 and summary["resumed_from"][0] > 0
    logs = "".join(p.read_text() for p in (root / ".sweeps").rglob("*_log.*"))
    assert "Requeued" in logs or "requeue" in logs.lower()

    assert bench_cli("run", *ARGS, f"runs_root={tmp_path / 'reference'}").code == 0
    _, reference = read_run(only_run(tmp_path / "reference"))
    strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]
    assert strip(lines) == strip(reference)  # requeued and resumed, the curve is the uninterrupted one
