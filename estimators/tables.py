"""Estimators: tables family (see estimators/base.py for the contract)."""
