"""Proxies of server-side data: ``List``, ``Dict``, ``Segments``, and the adapters."""

from znsocket.objects.adapters import DictAdapter, ItemTransformCallback, ListAdapter
from znsocket.objects.base import ZnSocketObject
from znsocket.objects.dict import Dict
from znsocket.objects.list import List
from znsocket.objects.segments import Segments

__all__ = [
    "Dict",
    "DictAdapter",
    "ItemTransformCallback",
    "List",
    "ListAdapter",
    "Segments",
    "ZnSocketObject",
]
