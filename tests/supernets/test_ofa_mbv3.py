import json

import pytest
import torch

from nasengine import supernets
from nasengine.kernels.static import from_spec, to_spec
from nasengine.supernets.base import Supernet
from tests.helpers import perturb


@pytest.fixture(scope="module")
def default_net() -> Supernet:
    torch.manual_seed(0)
    net = supernets.create("ofa_mbv3_digits")
    perturb(net)
    return net.eval()


def test_registry_contract() -> None:
    assert "ofa_mbv3_digits" in supernets.available()
    with pytest.raises(ValueError, match="unknown supernet 'nope'"):
        supernets.create("nope")


@torch.no_grad()
def test_extracted_subnets_match_the_supernet_for_20_random_archs(default_net: Supernet) -> None:
    worst = 0.0
    for seed in range(20):
        arch = default_net.space.sample(seed=seed)
        x = default_net.example_input(arch, batch=4)
        assert x.shape == (4, 1, arch["resolution"], arch["resolution"])
        default_net.set_active(arch)
        static = default_net.extract(arch)
        worst = max(worst, float((default_net(x) - static(x)).abs().max()))
        assert default_net.cost(arch).params == sum(p.numel() for p in static.parameters())
        assert not any(type(m).__module__.startswith(("nasengine.supernets", "nasengine.kernels.ops",
                                                      "nasengine.kernels.layers"))
                       for m in static.modules())
    assert worst <= 1e-5


def test_extract_restores_the_active_arch(default_net: Supernet) -> None:
    arch = default_net.space.sample(seed=1)
    default_net.set_active(arch)
    default_net.extract(default_net.space.min())
    assert default_net.active_arch == arch


def test_costs_grow_from_min_to_max(default_net: Supernet) -> None:
    low, high = default_net.cost(default_net.space.min()), default_net.cost(default_net.space.max())
    assert high.macs > 10 * low.macs and high.params > 3 * low.params


def test_invalid_arch_raises_value_error(default_net: Supernet) -> None:
    arch = default_net.space.max()
    arch["s0.b0.kernel"] = 4
    with pytest.raises(ValueError, match="s0.b0.kernel"):
        default_net.set_active(arch)
    with pytest.raises(ValueError, match="unknown gene"):
        default_net.extract({**default_net.space.max(), "width": 2})


def test_config_rebuilds_the_same_supernet(tiny_kwargs: dict) -> None:
    net = supernets.create("ofa_mbv3_digits", **tiny_kwargs)
    again = supernets.from_config(json.loads(json.dumps({"supernet": net.name, "kwargs": net.config})))
    again.load_state_dict(net.state_dict())
    assert again.space.to_dict() == net.space.to_dict()


def test_saved_supernet_reloads(tmp_path, tiny_kwargs: dict) -> None:
    net = supernets.create("ofa_mbv3_digits", **tiny_kwargs)
    perturb(net)
    supernets.save_supernet(net, tmp_path / "sn", {"task": "digits"})
    loaded, config = supernets.load_supernet(tmp_path / "sn")
    arch = net.space.sample(seed=4)
    net.eval().set_active(arch)
    loaded.set_active(arch)
    x = net.example_input(arch, 2)
    torch.testing.assert_close(net(x), loaded(x))
    assert config["task"] == "digits"


def test_static_spec_of_extracted_subnet_is_json(default_net: Supernet) -> None:
    arch = default_net.space.sample(seed=7)
    static = default_net.extract(arch)
    rebuilt = from_spec(json.loads(json.dumps(to_spec(static))))
    rebuilt.load_state_dict(static.state_dict(), strict=True)
    x = default_net.example_input(arch, 2)
    torch.testing.assert_close(static(x), rebuilt.eval()(x))


def test_digits_space_is_not_width_elastic(default_net: Supernet) -> None:
    expected = ["resolution"]
    for i in range(4):
        expected.append(f"s{i}.depth")
        expected += [f"s{i}.b{j}.{kind}" for j in range(4) for kind in ("kernel", "expand")]
    assert default_net.space.names == expected
    assert not default_net.space.genes_tagged("width")
    assert default_net.config["widths"] == [1.0]
    assert [b.out_channels for b in default_net.stages[0]] == [24] * 4


def test_generic_builder_is_width_elastic_unless_told_otherwise(tiny_kwargs: dict) -> None:
    net = supernets.create("ofa_mbv3", in_channels=1, **tiny_kwargs)
    assert [g.name for g in net.space.genes_tagged("width")] == ["s0.width", "s1.width"]
    assert net.space.gene("s1.width").options == (0.5, 0.75, 1.0)
    fixed = supernets.create("ofa_mbv3", in_channels=1, widths=[1.0], **tiny_kwargs)
    assert not fixed.space.genes_tagged("width")
    with pytest.raises(ValueError, match="width multipliers"):
        supernets.create("ofa_mbv3", widths=[0.5, 1.5])
