"""Weight-sharing supernet families, their training recipes, and a registry (`create`, `register`)."""

from supernets.base import Cost, Layer, Supernet
from supernets.registry import available, create, create_for_task, entry, from_config, register

from supernets import ofa_mbv3 as _ofa_mbv3  # noqa: F401  (registers its family)
from supernets import vit as _vit  # noqa: F401  (registers vit, vit_digits)
from supernets import bert as _bert  # noqa: F401  (registers bert)

__all__ = ["Cost", "Layer", "Supernet", "available", "create", "create_for_task", "entry", "from_config", "register"]
from supernets.io import load_supernet, save_supernet, weights_digest  # noqa: E402

__all__ += ["load_supernet", "save_supernet", "weights_digest"]
