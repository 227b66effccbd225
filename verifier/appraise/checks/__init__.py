"""The appraisal functions, one per check, registered in ``verifier.appraise.registry`` in evaluation order.

Importing this package registers every check: signature → report → TDX → software identity → GPU → served model →
TLS channel binding. The
import order IS the registry order (a check is declared after the checks it needs).
"""
# ruff: noqa: I001, F401

from verifier.appraise.checks import signature
from verifier.appraise.checks import report
from verifier.appraise.checks import tdx
from verifier.appraise.checks import identity
from verifier.appraise.checks import gpu
from verifier.appraise.checks import fallback
from verifier.appraise.checks import tls
