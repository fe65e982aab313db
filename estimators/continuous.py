"""Estimators: continuous family (see estimators/base.py for the contract)."""
