"""Local parallelism: GPU slot packing (on a fake device list) and `launcher=parallel` end to end."""

import json
import multiprocessing
import os
import time

from bench.runner.devices import claim

FAKE_GPUS = [("cuda:0", "GPU-aaaa"), ("cuda:1", "GPU-bbbb")]


def test_each_claim_gets_a_free_device_until_none_is_left(tmp_path):
    first = claim(FAKE_GPUS, tmp_path, timeout_s=0)
    second = claim(FAKE_GPUS, tmp_path, timeout_s=0)
    assert {first.device, second.device} == {"cuda:0", "cuda:1"}
    assert claim(FAKE_GPUS, tmp_path, timeout_s=0.2) is None  # both busy
    first.release()
    third = claim(FAKE_GPUS, tmp_path, timeout_s=0)
    assert third.device == first.device  # the freed one, not a shared one
    for slot in (second, third):
        slot.release()


def test_slots_follow_the_physical_gpu_not_its_index(tmp_path):
    """Two processes with different CUDA_VISIBLE_DEVICES masks both call a GPU cuda:0; the lock
    is named after the GPU's identity, so they still exclude each other only when it is the same GPU."""
    mine = claim([("cuda:0", "GPU-aaaa")], tmp_path, timeout_s=0)
    assert claim([("cuda:0", "GPU-aaaa")], tmp_path, timeout_s=0) is None
    other = claim([("cuda:0", "GPU-bbbb")], tmp_path, timeout_s=0)
    assert other is not None
    mine.release()
    other.release()


def _job(lock_dir, queue):
    slot = claim(FAKE_GPUS, lock_dir, poll_s=0.02)
    start = time.monotonic()
    time.sleep(0.3)
    end = time.monotonic()
    slot.release()
    queue.put((slot.device, start, end))


def test_four_parallel_jobs_on_two_gpus_never_share_one(tmp_path):
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    jobs = [ctx.Process(target=_job, args=(tmp_path, queue)) for _ in range(4)]
    for j in jobs:
        j.start()
    spans = [queue.get(timeout=60) for _ in jobs]
    for j in jobs:
        j.join(timeout=10)
    for device in ("cuda:0", "cuda:1"):
        mine = sorted((s, e) for d, s, e in spans if d == device)
        assert len(mine) == 2, spans  # the work was spread over both GPUs
        assert mine[0][1] <= mine[1][0]  # and one GPU never ran two jobs at once


def test_parallel_preset_selects_joblib_with_one_worker_per_core():
    from bench.sweep.launch import HydraSession

    session = HydraSession(["launcher=parallel"])
    try:
        assert not session.in_process and session.launcher_name == "joblib"
        assert session.master.hydra.launcher.n_jobs == os.cpu_count()  # no GPUs here
    finally:
        session.close()


def test_tune_with_the_parallel_launcher(bench_cli, runs_root):
    res = bench_cli("tune", "optimizer=sgd,adam", "task=logreg", "steps=20", "trials=2", "seeds=1",
                    "launcher=parallel", "hydra.launcher.n_jobs=2", f"runs_root={runs_root}")
    assert res.code == 0, res.output
    assert "with hydra/launcher=joblib" in res.output
    runs = [json.loads(p.read_text()) for p in runs_root.glob("*/summary.json")]
    assert len(runs) == 6 and all(s["status"] == "ok" for s in runs)
    workers = {s["env"]["pid"] for s in runs}
    assert os.getpid() not in workers  # the runs ran in worker processes
    again = bench_cli("tune", "optimizer=sgd,adam", "task=logreg", "steps=20", "trials=2", "seeds=1",
                      f"runs_root={runs_root}")  # in process now: same sweep, nothing left to run
    assert "6 cells: 6 done, 0 resumed, 0 to run" in again.output
