"""`bench run` end to end: run directory contents, skip on re-run, divergence, determinism."""

from conftest import only_run, read_run


def test_run_writes_run_directory_and_skips_rerun(bench_cli, runs_root):
    args = ("run", "task=logreg", "optimizer=adamw", "steps=40", f"runs_root={runs_root}", "progress=off")
    first = bench_cli(*args)
    assert first.code == 0, first.output
    run_dir = only_run(runs_root)
    summary, lines = read_run(run_dir)
    assert (run_dir / "config.yaml").exists()
    assert summary["status"] == "ok" and summary["steps"] == 40
    assert lines[0]["step"] == 0 and lines[-1]["step"] == 40
    assert summary["train_time_s"] > 0 and summary["optimizer_state_bytes"] > 0
    second = bench_cli(*args)
    assert second.code == 0 and "already done" in second.output
    assert len(list(runs_root.iterdir())) == 1


def test_force_reruns_into_new_directory(bench_cli, runs_root):
    args = ("run", "steps=10", f"runs_root={runs_root}", "progress=off")
    bench_cli(*args)
    before = {p: p.read_text() for p in only_run(runs_root).iterdir() if p.is_file()}
    assert bench_cli(*args, "force=true").code == 0
    names = sorted(d.name for d in runs_root.iterdir())
    assert len(names) == 2 and names[1] == names[0] + "-2"
    assert all(p.read_text() == text for p, text in before.items())


def test_divergence_is_a_result(bench_cli, runs_root):
    res = bench_cli("run", "optimizer=sgd", "optimizer.lr=1e6", "task=logreg", "task.l2=1.0", "steps=50",
                    f"runs_root={runs_root}", "progress=off")
    assert res.code == 0, res.output
    summary, _ = read_run(only_run(runs_root))
    assert summary["status"] == "diverged"
    assert 0 < summary["diverged_at"] <= 50


def test_same_seed_same_metrics(bench_cli, tmp_path):
    curves = []
    for name in ("a", "b"):
        root = tmp_path / name
        assert bench_cli("run", "steps=30", "log_every=1", "seed=3", f"runs_root={root}", "progress=off").code == 0
        _, lines = read_run(only_run(root))
        curves.append([{k: v for k, v in x.items() if not k.startswith("time/")} for x in lines])
    assert curves[0] == curves[1]
