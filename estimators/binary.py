"""Estimators: binary family (see estimators/base.py for the contract)."""
