"""`nasengine audit`: arch picks across the cost range, the summary's numbers, the written report, reuse of
references, resume after SIGKILL, and one-line refusals of bad input."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nasengine import supernets
from nasengine.auditing import AuditRequest, run_audit, spread_archs, summarize
from nasengine.auditing import audit as audit_module
from nasengine.auditing.picks import spread_order
from nasengine.search_spaces.samplers import sample_unique
from nasengine.errors import UserError
from tests.cli_helpers import one_line_error, run_cli
from tests.conftest import TINY


def test_picks_span_the_cost_range_better_than_uniform_samples() -> None:
    net = supernets.create("ofa_mbv3_digits", **TINY)
    cost = lambda a: float(net.cost(a).macs)  # noqa: E731
    picks = spread_archs(net.space, cost, 8, seed=1)
    keys = {net.space.key(a) for a in picks}
    assert len(keys) == 8 and net.space.key(net.space.min()) in keys and net.space.key(net.space.max()) in keys
    costs = [cost(a) for a in picks]
    assert costs == sorted(costs)

    def widest_gap(archs):
        logs = sorted(math.log(cost(a)) for a in archs)
        return max(np.diff(logs))

    uniform = sample_unique(net.space, 8, seed=1, include_extremes=True)
    assert widest_gap(picks) < widest_gap(uniform)


def test_spread_order_covers_the_range_first() -> None:
    for n in range(1, 20):
        order = spread_order(n)
        assert sorted(order) == list(range(n))
    assert spread_order(9)[:3] == [0, 8, 4]


def test_summary_numbers() -> None:
    rows = [{"standalone": s, "inherited": s - 0.05, "macs": m, "params": p}
            for s, m, p in [(0.80, 1, 9), (0.82, 3, 1), (0.85, 2, 5), (0.88, 4, 3)]]
    summary = summarize(rows)
    assert summary.tau == pytest.approx(1.0) and summary.tau_low <= summary.tau <= summary.tau_high
    assert summary.tau_macs == pytest.approx(4 / 6) and summary.mean_gap_points == pytest.approx(-5.0)
    assert summary.worst_gap_points == pytest.approx(-5.0)
    with pytest.raises(ValueError):
        summarize(rows[:2])


def test_audit_writes_the_report_resumes_and_reuses(tiny_supernet_dir: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "audit"
    result = run_audit(AuditRequest(tiny_supernet_dir, out, archs=4, epochs=1, threads=1, progress=False),
                       say=lambda s: None)
    assert result["complete"] and result["summary"]["archs"] == 4
    for name in ("audit.csv", "audit.png", "summary.json", "inherited.json"):
        assert (out / name).is_file()
    rows = list(csv.DictReader(open(out / "audit.csv")))
    assert len(rows) == 4 and all(0 <= float(r["standalone"]) <= 1 for r in rows)
    assert [int(r["macs"]) for r in rows] == sorted(int(r["macs"]) for r in rows)
    cost = json.loads((out / "summary.json").read_text())["training_cost"]
    assert cost["ratio"] == pytest.approx(cost["supernet_seconds"] / cost["largest_alone_seconds"], rel=1e-2)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished reference was trained again")

    monkeypatch.setattr(audit_module, "train_alone", no_training)
    again = run_audit(AuditRequest(tiny_supernet_dir, out, archs=4, epochs=1, threads=1, progress=False),
                      say=lambda s: None)
    assert again["summary"] == result["summary"]
    # another audit of the same supernet with other picks reuses the references it shares (the extremes)
    other = tmp_path / "other"
    with pytest.raises(AssertionError, match="trained again"):  # 2 of its 3 picks are new
        run_audit(AuditRequest(tiny_supernet_dir, other, archs=3, epochs=1, threads=1, seed=7, reuse=(out,),
                               progress=False), say=lambda s: None)
    reused = {p.name for p in (other / "standalone").glob("*.json")}
    assert len(reused) == 2 and reused <= {p.name for p in (out / "standalone").glob("*.json")}
    with pytest.raises(UserError, match="made with archs=4"):
        run_audit(AuditRequest(tiny_supernet_dir, out, archs=5, epochs=1, progress=False), say=lambda s: None)


def test_reference_seeds_agreement_in_the_summary() -> None:
    """Two seeds that rank 4 archs alike but for one swapped pair: tau 4/6; they differ by 1 point on average."""
    seeds = [(0.80, 0.81), (0.82, 0.84), (0.85, 0.83), (0.88, 0.88)]
    rows = [{"standalone": sum(s) / 2, "standalone_seeds": json.dumps(s), "inherited": 0.8 + i / 100, "macs": i + 1,
             "params": 1} for i, s in enumerate(seeds)]
    summary = summarize(rows)
    assert summary.reference_seeds == 2 and summary.reference_tau == pytest.approx(4 / 6)
    assert summary.reference_difference_points == pytest.approx(1.25)
    assert "2 seeds of training alone agree at tau 0.667" in summary.line()
    assert summarize([{k: v for k, v in r.items() if k != "standalone_seeds"} for r in rows]).reference_seeds == 1


def test_a_second_reference_seed_reuses_the_first_and_trains_another(tiny_supernet_dir: Path,
                                                                     tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    first = run_audit(AuditRequest(tiny_supernet_dir, one, archs=3, epochs=1, threads=1, progress=False),
                      say=lambda s: None)
    said: list[str] = []
    both = run_audit(AuditRequest(tiny_supernet_dir, two, archs=3, epochs=1, threads=1, reference_seeds=2,
                                  reuse=(one,), progress=False), say=said.append)
    assert "training 3 of 6 archs x 2 seeds" in said[0]  # the seed-0 references came from the first audit
    rows = list(csv.DictReader(open(two / "audit.csv")))
    firsts = {r["arch"]: float(r["standalone"]) for r in csv.DictReader(open(one / "audit.csv"))}
    for row in rows:
        seed0, seed1 = json.loads(row["standalone_seeds"])
        assert seed0 == firsts[row["arch"]] and float(row["standalone"]) == pytest.approx((seed0 + seed1) / 2)
    assert any(json.loads(r["standalone_seeds"])[0] != json.loads(r["standalone_seeds"])[1] for r in rows)
    assert both["summary"]["reference_seeds"] == 2 and first["summary"]["reference_seeds"] == 1


def test_a_time_budget_reports_what_is_done(tiny_supernet_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit"
    said: list[str] = []
    result = run_audit(AuditRequest(tiny_supernet_dir, out, archs=4, epochs=1, threads=1, budget_minutes=1e-6,
                                    progress=False), say=said.append)
    assert not result["complete"] and result["done"] == 0 and "summary" not in result
    assert "run the same command again" in said[-1]
    assert json.loads((out / "audit.json").read_text())["status"] == "partial"


def test_audit_resumes_after_sigkill(tiny_supernet_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit"
    command = [sys.executable, "-m", "nasengine", "audit", str(tiny_supernet_dir), "--out", str(out), "--archs", "5",
               "--epochs", "3", "--threads", "1", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not list((out / "standalone").glob("*.json")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done_before = len(list((out / "standalone").glob("*.json")))
    assert 1 <= done_before < 5, "the kill came too late to test a resume"
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert f"training {5 - done_before} of 5 archs" in finished.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["summary"]["archs"] == 5
    assert not list((out / "standalone").glob("*.checkpoints"))  # finished trainings leave no checkpoints


def test_bad_input_is_refused_in_one_line(tiny_supernet_dir: Path, tmp_path: Path, capsys) -> None:
    cases = [
        ([tmp_path, "--out", tmp_path / "a"], "config.json"),
        ([tiny_supernet_dir, "--out", tmp_path / "a", "--archs", "2"], "--archs must be at least 3"),
        ([tiny_supernet_dir, "--out", tmp_path / "a", "--epochs", "0"], "--epochs must be at least 1"),
        ([tiny_supernet_dir, "--out", tmp_path / "a", "--reuse", tmp_path], "not an audit directory"),
        ([tiny_supernet_dir, "--out", tiny_supernet_dir], "must differ"),
    ]
    for args, expected in cases:
        line = one_line_error(*run_cli(capsys, "audit", *args)[::2])
        assert expected in line, line
        assert not (tmp_path / "a").exists()


def test_a_family_grown_from_a_checkpoint_is_audited_against_archs_fine_tuned_alone_from_it(tmp_path: Path,
                                                                                           capsys) -> None:
    import torch

    from nasengine.auditing.standalone import _untrained
    from nasengine.supernets.io import read_config
    from tests.text_data import write_sentiment_tsv, write_tiny_checkpoint

    ckpt = write_tiny_checkpoint(tmp_path / "ckpt")
    data = write_sentiment_tsv(tmp_path / "train.tsv", 240)
    code, _, err = run_cli(capsys, "train", "bert", "--checkpoint", ckpt, "--data", data, "--max-length", 12,
                           "--epochs", 1, "--batch-size", 16, "--quiet", "--threads", 1, "--out", tmp_path / "sn")
    assert code == 0, err
    config = read_config(tmp_path / "sn")
    torch.manual_seed(0)
    start = _untrained(config).state_dict()
    torch.manual_seed(0)
    pretrained = supernets.create("bert", **config["kwargs"], checkpoint=str(ckpt)).state_dict()
    assert all(torch.equal(start[k], pretrained[k]) for k in pretrained)
    torch.manual_seed(0)
    assert not all(torch.equal(start[k], v) for k, v in supernets.from_config(config).state_dict().items())
    result = run_audit(AuditRequest(tmp_path / "sn", tmp_path / "audit", archs=3, epochs=1, threads=1,
                                    progress=False), say=lambda s: None)
    assert result["complete"] and -1 <= result["summary"]["tau"] <= 1


def test_references_are_trained_alone_whatever_the_supernet_recipe() -> None:
    from nasengine.auditing.standalone import reference_identity, single_arch_settings

    base = {"training": {"supernet": "ofa_mbv3", "batch_size": 64, "epochs": 6, "lr": 0.004, "seed": 0},
            "task": {"name": "t"}}
    teacher_first = {**base, "training": {**base["training"], "teacher_epochs": 6, "teacher_lr": 0.004, "lr": 0.001,
                                          "sampler": "cost-uniform", "kd_temperature": 2.0, "n_random": 3}}
    settings = single_arch_settings(teacher_first, 6)
    assert settings.teacher_epochs == 0 and settings.lr == 0.004 and settings.sampler == "uniform"
    arch = {"resolution": 28}
    assert reference_identity(base, arch, 6) == reference_identity(teacher_first, arch, 6)  # shared references


def test_parallel_workers_give_the_references_one_worker_gives(tiny_supernet_dir: Path, tmp_path: Path) -> None:
    one = run_audit(AuditRequest(tiny_supernet_dir, tmp_path / "one", archs=3, epochs=1, threads=1, progress=False),
                    say=lambda s: None)
    two = run_audit(AuditRequest(tiny_supernet_dir, tmp_path / "two", archs=3, epochs=1, workers=2, threads=1,
                                 progress=False), say=lambda s: None)
    assert two["summary"] == one["summary"]  # seeded, one thread each: the same trainings


def test_rank_agreement_among_archs_of_similar_cost() -> None:
    from nasengine.auditing.summary import pairwise_tau, similar_cost_pairs

    macs = np.array([100, 150, 190, 1000, 1900])
    assert similar_cost_pairs(macs) == [(0, 1), (0, 2), (1, 2), (3, 4)]
    truth = np.array([0.80, 0.82, 0.81, 0.90, 0.91])
    assert pairwise_tau(truth, truth, similar_cost_pairs(macs)) == 1.0
    assert pairwise_tau(truth, macs, similar_cost_pairs(macs)) == pytest.approx((1 + 1 - 1 + 1) / 4)
    rows = [{"standalone": s, "inherited": s, "macs": m, "params": 1} for s, m in zip(truth, macs)]
    summary = summarize(rows)
    assert summary.similar_pairs == 4 and summary.tau_similar == 1.0 and summary.tau_macs_similar == 0.5
