"""Evaluating one candidate subnet for search: accuracy once, latency once per device, all through the store."""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from nasengine.devices.base import Device, Workload
from nasengine.devices.timing import Measurement
from nasengine.evaluation import Evaluator
from nasengine.records import Evaluation
from nasengine.store import ACCURACY, RunStore, latency_study
from search_spaces.space import Arch


class CandidateEvaluator:
    """`evaluate(arch) -> (Evaluation, new)`: real work only for what the run store does not hold yet."""

    def __init__(self, evaluator: Evaluator, devices: Sequence[Device], store: RunStore):
        self.evaluator, self.devices, self.store = evaluator, list(devices), store
        self.supernet = evaluator.supernet

    def workload(self, arch: Arch, key: str) -> Workload:
        return Workload(arch, key, lambda: self.supernet.extract(arch), self.supernet.input_shape(arch),
                        describe=lambda: self.supernet.describe(arch))

    def latency(self, device: Device, arch: Arch, key: str, workload: Workload | None = None) -> Measurement:
        study = latency_study(device.name)
        record = self.store.get(study, key)
        if record is None:
            measurement = device.measure(workload or self.workload(arch, key))
            record = self.store.put(study, arch, measurement.median_ms, measurement.to_dict())
        return Measurement.from_dict(record.attrs)

    def __call__(self, arch: Mapping[str, Any]) -> tuple[Evaluation, bool]:
        canonical = self.supernet.space.validate(arch)
        key = self.supernet.space.key(canonical)
        record = self.store.get(ACCURACY, key)
        new = record is None
        if record is None:
            cost = self.supernet.cost(canonical)
            accuracy = self.evaluator.evaluate(canonical)
            record = self.store.put(ACCURACY, canonical, accuracy, {"split": self.evaluator.split.name,
                                                                     "params": cost.params, "macs": cost.macs})
        workload = self.workload(canonical, key)
        latency = {d.name: self.latency(d, canonical, key, workload) for d in self.devices}
        return Evaluation(canonical, key, record.value, int(record.attrs["params"]), int(record.attrs["macs"]),
                          latency), new

    def all_evaluations(self) -> list[Evaluation]:
        """Every arch of the run with an accuracy and a latency on each device, in store order."""
        out = []
        for key, record in self.store.records(ACCURACY).items():
            latencies = {d.name: self.store.get(latency_study(d.name), key) for d in self.devices}
            if any(r is None for r in latencies.values()):
                continue
            arch = self.supernet.space.validate(json.loads(key))
            out.append(Evaluation(arch, key, record.value, int(record.attrs["params"]), int(record.attrs["macs"]),
                                  {d: Measurement.from_dict(r.attrs) for d, r in latencies.items()}))
        return out
