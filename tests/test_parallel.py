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
        assert session.master.hydra.launcher.n_jobs == len(os.sched_getaffinity(0))  # no GPUs here: one per core
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


def test_trials_per_gpu_slots_are_exclusive_per_gpu_and_slot(tmp_path):
    from bench.runner.devices import gpu_slots

    slots = gpu_slots(FAKE_GPUS, 2)
    assert [d for d, _ in slots] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]  # spread before doubling up
    held = [claim(slots, tmp_path, timeout_s=0) for _ in range(4)]
    assert sorted(h.device for h in held) == ["cuda:0", "cuda:0", "cuda:1", "cuda:1"]
    assert claim(slots, tmp_path, timeout_s=0.1) is None  # 2 GPUs x 2 slots, all taken
    held[0].release()
    again = claim(slots, tmp_path, timeout_s=0)
    assert again.name == held[0].name  # the freed (GPU, slot), no other
    for slot in (*held[1:], again):
        slot.release()


def test_parallel_preset_takes_trials_per_gpu():
    from bench.runner.devices import parallel_jobs
    from bench.sweep.launch import HydraSession

    session = HydraSession(["launcher=parallel", "distributed.trials_per_gpu=4"])
    try:
        assert session.master.distributed.trials_per_gpu == 4
        assert session.master.hydra.launcher.n_jobs == parallel_jobs(4) == len(os.sched_getaffinity(0))  # no GPUs
    finally:
        session.close()


def test_cpu_trials_claim_a_core_each(monkeypatch, tmp_path):
    import torch

    from bench.runner import devices

    monkeypatch.setattr(devices, "lock_directory", lambda: tmp_path)
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cores: pinned.append(cores))
    monkeypatch.setattr(torch, "set_num_threads", lambda n: threads.append(n))
    pinned, threads = [], []
    cores = sorted(os.sched_getaffinity(0))
    held = [devices.place("auto", distributed=False, per_device=1) for _ in cores]
    assert [d for d, _ in held] == ["cpu"] * len(cores)
    assert pinned == [{c} for c in cores] and threads == [1] * len(cores)  # one core and one thread each
    assert devices.place("auto", distributed=False, per_device=None) == ("auto", None)  # not under launcher=parallel
    for _, slot in held:
        slot.release()
