"""Upstream's ``znsocket.abc`` import path: the proxies' base class and typed dicts.

Code written for upstream znsocket 0.3.0 imports these names from here
(``from znsocket.abc import ZnSocketObject``); they live in :mod:`znsocket.objects.base`.
"""

from znsocket.objects.base import (
    DictCallbackTypedDict,
    DictRepr,
    ListCallbackTypedDict,
    ListRepr,
    RefreshDataTypeDict,
    RefreshTypeDict,
    ZnSocketObject,
)

__all__ = [
    "DictCallbackTypedDict",
    "DictRepr",
    "ListCallbackTypedDict",
    "ListRepr",
    "RefreshDataTypeDict",
    "RefreshTypeDict",
    "ZnSocketObject",
]
