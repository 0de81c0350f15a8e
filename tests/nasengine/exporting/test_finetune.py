"""`nasengine finetune`: the fine-tuned subnet is a complete export of the same arch (reloadable, scored and
re-measured like any export), records its parent and its per-epoch log, resumes, and refuses bad input in one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from nasengine.exporting import finetune as finetune_module
from nasengine.exporting.exporter import ExportRequest, export
from nasengine.exporting.finetune import LOG, FinetuneRequest, finetune
from nasengine.exporting.subnet import evaluate_subnet, load_subnet
from tests.cli_helpers import one_line_error, run_cli


@pytest.fixture(scope="module")
def parent(tiny_run_dir: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finetune") / "exp"
    export(ExportRequest(tiny_run_dir, out))
    return out


def test_finetuned_export_keeps_the_contract_and_records_its_parent(parent: Path, tmp_path: Path) -> None:
    out = tmp_path / "ft"
    result = finetune(FinetuneRequest(parent, out, epochs=2, progress=False))
    before, after = json.loads((parent / "manifest.json").read_text()), json.loads((out / "manifest.json").read_text())
    assert after["arch"] == before["arch"] and after["device"] == before["device"]
    assert after["finetuned"]["parent"]["dir"] == str(parent.resolve())
    assert after["accuracy"] == pytest.approx(evaluate_subnet(out), abs=1e-9)  # re-scored on the new weights
    assert after["latency_kind"] == "measured" and after["latency_ms"] > 0
    rows = list(csv.DictReader(open(out / LOG)))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert float(rows[0]["test_acc"]) == pytest.approx(before["accuracy"])
    assert float(rows[-1]["test_acc"]) == pytest.approx(after["accuracy"], abs=1e-9)
    old, new = load_subnet(parent).state_dict(), load_subnet(out).state_dict()
    assert old.keys() == new.keys() and any(not (old[k] == new[k]).all() for k in old if old[k].is_floating_point())
    assert not (out.parent / f".{out.name}.finetune").exists()
    again = finetune(FinetuneRequest(parent, out, epochs=2, progress=False))
    assert again["resumed"] and again["accuracy"] == result["accuracy"]
    decided = after["finetuned"]["identity"]["teacher"]  # --distill-from auto: what it compared, what it chose
    clearly_better = decided["teacher_val"] >= decided["export_val"] + decided["margin"]
    assert (decided["source"] is not None) == clearly_better


def test_a_finetuning_stopped_before_its_export_resumes_without_training_again(parent: Path, tmp_path: Path,
                                                                                 monkeypatch) -> None:
    out = tmp_path / "ft"

    def broken_export(request):
        raise RuntimeError("killed while exporting")

    real_export = finetune_module.export
    monkeypatch.setattr(finetune_module, "export", broken_export)
    with pytest.raises(RuntimeError):
        finetune(FinetuneRequest(parent, out, epochs=1, distill_from="none", progress=False))
    assert not out.exists() and (out.parent / f".{out.name}.finetune" / "checkpoints").is_dir()
    monkeypatch.setattr(finetune_module, "export", real_export)
    trained: list[int] = []
    monkeypatch.setattr(finetune_module, "train_supernet", _counting(finetune_module.train_supernet, trained))
    result = finetune(FinetuneRequest(parent, out, epochs=1, distill_from="none", progress=False))
    assert trained == [0] and result["finetuned"]["identity"]["distill_from"] == "none"


def _counting(train, steps: list[int]):
    """train_supernet that records how many steps it actually trained."""
    def wrapper(*args, **kwargs):
        hooks = args[5] if len(args) > 5 else kwargs["hooks"]
        count = [0]
        inner = hooks.on_step

        def on_step(epoch, step, loss):
            count[0] += 1
            inner(epoch, step, loss)

        from dataclasses import replace
        args = (*args[:5], replace(hooks, on_step=on_step), *args[6:])
        log = train(*args, **kwargs)
        steps.append(count[0])
        return log
    return wrapper


def test_bad_input_is_refused_in_one_line(parent: Path, tmp_path: Path, capsys) -> None:
    cases = [
        ([tmp_path, "--out", tmp_path / "a"], "not an exported subnet"),
        ([parent, "--out", parent], "must differ"),
        ([parent, "--out", tmp_path / "a", "--epochs", "0"], "--epochs"),
        ([parent, "--out", tmp_path / "a", "--distill-from", tmp_path], "not a trained supernet"),
    ]
    for args, expected in cases:
        line = one_line_error(*run_cli(capsys, "finetune", *args)[::2])
        assert expected in line, line
        assert not (tmp_path / "a").exists()


def test_an_export_can_teach(parent: Path, tmp_path: Path) -> None:
    import torch

    from nasengine.exporting.subnet import read_subnet_config
    from nasengine.tasks import task_from_spec
    from nasengine.training.teachers import teacher_from

    task = task_from_spec(read_subnet_config(parent)["task"])
    teacher = teacher_from(parent, task, "--teacher")
    x = task.split("val").inputs[:4] if hasattr(task.split("val"), "inputs") else None
    probabilities = teacher.probabilities(torch.as_tensor(x))
    assert probabilities.shape == (4, task.num_classes)
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(4))
    result = finetune(FinetuneRequest(parent, tmp_path / "ft", epochs=1, distill_from=str(parent), progress=False))
    assert result["finetuned"]["identity"]["distill_from"] == str(parent)
