"""Plain Python values (dict, list, int, float, str, bool, None) from numpy scalars, tuples and
mappings, so what is pickled to workers or written as JSON is portable."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def plain_value(v: Any) -> Any:
    """``v`` with mappings as dicts (string keys), sequences as lists, numpy scalars as Python."""
    if isinstance(v, Mapping):
        return {str(k): plain_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain_value(x) for x in v]
    if hasattr(v, "item") and np.ndim(v) == 0 and not isinstance(v, (str, bytes)):
        return v.item()
    return v
