"""Estimators: survival family (see estimators/base.py for the contract)."""
