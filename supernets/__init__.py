"""Weight-sharing supernet families, their training recipes, and a registry (`create`, `register`)."""

from nasengine.search_spaces._bare_name import defer_bare_name

defer_bare_name(__name__)  # under its bare name (a checkout's root on sys.path) the name goes to its owner

from nasengine.supernets.base import Cost, FamilyConfig, Layer, Supernet
from nasengine.supernets.registry import available, create, create_for_task, entry, from_config, register

from nasengine.supernets import ofa_mbv3 as _ofa_mbv3  # noqa: F401  (registers its family)
from nasengine.supernets import vit as _vit  # noqa: F401  (registers vit, vit_digits)
from nasengine.supernets import bert as _bert  # noqa: F401  (registers bert)
from nasengine.supernets import llama as _llama  # noqa: F401  (registers llama)

__all__ = ["Cost", "FamilyConfig", "Layer", "Supernet", "available", "create", "create_for_task", "entry",
           "from_config", "register"]
from nasengine.supernets.io import load_supernet, save_supernet, weights_digest  # noqa: E402

__all__ += ["load_supernet", "save_supernet", "weights_digest"]
