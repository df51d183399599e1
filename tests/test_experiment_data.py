"""An experiment preset checks the data of every task it names before its first run, and says
which command fetches what is missing."""

from bench.experiments import common


def test_a_gpu_preset_without_its_data_fails_at_once(bench_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "no-data"))  # no Shakespeare, no CIFAR-10 here
    ran = []
    monkeypatch.setattr(common.Experiment, "run", lambda self, *a, **k: ran.append(a))
    res = bench_cli("experiment", "lion_memory", "--scale", "gpu", "--runs", str(tmp_path / "runs"))
    assert res.code == 2, res.output
    message = res.output.strip().splitlines()[-1]
    assert "needs data" in message and "bench data shakespeare" in message and "bench data cifar10" in message
    assert not ran and not (tmp_path / "runs").exists()


def test_a_preset_task_node_on_missing_fashion_mnist_is_named(monkeypatch):
    import pytest

    from bench import BenchError
    from bench.experiments import require_data
    from bench.tasks import DATA_CHECKS

    monkeypatch.setitem(DATA_CHECKS, "bench.tasks.fashion.FashionMNIST", lambda node: False)
    with pytest.raises(BenchError, match="dataset-fashion-mnist"):
        require_data(common.load_spec("edge_of_stability", "gpu"), "bench experiment edge_of_stability")
    require_data(common.load_spec("edge_of_stability", "test"), "its test scale reads digits only")
