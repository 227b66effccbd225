"""Attestation verifier for confidential-AI gateway completions."""

__version__ = "0.1.0"
