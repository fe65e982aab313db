"""Estimators: longitudinal family (see estimators/base.py for the contract)."""
