"""``estimators.base.capture`` records exactly what ``catch_warnings(record=True)`` with
``simplefilter("always")`` records, and leaves the warnings machinery as it found it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from palliasim.estimators import base
from palliasim.estimators.base import capture


def _emit():
    """A mix: repeated texts (the "default"/"once" filters would collapse them), categories the
    default filters ignore, a numpy floating-point warning, an explicit warning."""
    for _ in range(3):
        warnings.warn("same text", UserWarning, stacklevel=1)
    warnings.warn("deprecated", DeprecationWarning, stacklevel=1)
    warnings.warn("pending", PendingDeprecationWarning, stacklevel=1)
    warnings.warn("runtime", RuntimeWarning, stacklevel=1)
    with np.errstate(divide="warn"):
        np.log(np.zeros(2))
    warnings.warn_explicit("explicit", UserWarning, "somefile.py", 7, registry={})
    warnings.filterwarnings("ignore", message="same text")  # undone on exit
    warnings.warn("same text", UserWarning, stacklevel=1)  # now ignored, in both


def _as_tuples(records):
    return [(type(w.message), str(w.message), w.category) for w in records]


def test_capture_records_what_catch_warnings_records_and_restores_everything():
    filters, show = list(warnings.filters), warnings.showwarning
    with warnings.catch_warnings(record=True) as want:
        warnings.simplefilter("always")
        _emit()
    assert warnings.filters == filters
    with capture() as got:
        _emit()
        with capture() as inner:  # nested: the inner one records, the outer sees nothing
            warnings.warn("inner only", UserWarning, stacklevel=1)
    assert _as_tuples(got.records) == _as_tuples(want)
    assert len(want) == 8 and [str(w.message) for w in inner.records] == ["inner only"]
    assert list(got) == base.warning_texts(want)  # the texts, deprecations ignored
    assert warnings.filters == filters and warnings.showwarning is show


def test_capture_restores_on_an_exception_and_warnings_print_again_after():
    filters = list(warnings.filters)
    with pytest.raises(ZeroDivisionError), capture() as msgs:
        warnings.warn("before the error", UserWarning, stacklevel=1)
        raise ZeroDivisionError
    assert list(msgs) == ["UserWarning: before the error"]
    assert warnings.filters == filters
    with pytest.warns(UserWarning, match="outside"):  # the normal machinery is back
        warnings.warn("outside", UserWarning, stacklevel=1)


def test_capture_by_catch_warnings_where_the_module_differs(monkeypatch):
    """The fallback for interpreters whose warnings module has other internals."""
    monkeypatch.setattr(base, "_SWAP_FILTERS", False)
    with capture() as got:
        _emit()
    with capture() as again:
        _emit()
    assert len(got.records) == 8 and _as_tuples(got.records) == _as_tuples(again.records)


def test_fp_errors_ignored_is_errstate_ignore_and_restores_the_state():
    before = np.geterr()
    with base.fp_errors_ignored():
        assert set(np.geterr().values()) == {"ignore"}
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            np.sqrt(-np.ones(2))  # no RuntimeWarning
            np.ones(2) / 0.0
        with np.errstate(divide="raise"):
            assert np.geterr()["divide"] == "raise"
        assert np.geterr()["divide"] == "ignore"
    assert np.geterr() == before
    with pytest.raises(KeyError), base.fp_errors_ignored():
        raise KeyError("x")
    assert np.geterr() == before


def test_fp_errors_ignored_by_errstate_where_numpy_differs(monkeypatch):
    monkeypatch.setattr(base, "_FP_STATE", None)
    before = np.geterr()
    with base.fp_errors_ignored():
        assert set(np.geterr().values()) == {"ignore"}
    assert np.geterr() == before
