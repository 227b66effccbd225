"""The model that served the completion is the one requested (no silent fallback to another model).

A gateway may route a request to a fallback model and say so only in response headers (``x-model-used``,
``x-fallback-from``, ``x-fallback-depth``) or in the body's ``model``. A confidential request answered by another
model than the one asked for is ``model_fallback`` (fail), unless the policy's ``[models]`` table names the
served model as an alias of the requested one. A bundle in which nothing names a served model (no recorded headers,
no ``model`` in the body) passes this check: it detects declared fallbacks; the attestation checks bind the model.

The recorded response headers (``headers.json``) are observer data nothing authenticates (the response body is
signed; its headers are not), so this is an observer check: a re-appraisal never upgrades its recorded result
(``engine.ceiling``), and a pass says whether the headers went into it (``details.observed``).
"""

from __future__ import annotations

from verifier.appraise.registry import Appraisal, Passed, check
from verifier.core.errors import CheckFailed, Indeterminate
from verifier.evidence.served_model import served_model
from verifier.verify.results import Facts


@check(
    "model.served",
    "the model that served the completion (x-model-used, fallback headers, the response's model) "
    "is the requested model or a policy alias of it",
    observed=True,
)
def model_served(f: Facts, a: Appraisal) -> Passed:
    requested = f.bundle.meta.model
    if not requested:
        raise Indeterminate("the bundle names no requested model", reason="model_not_requested")
    served = served_model(f.bundle.headers, f.bundle.response)
    recorded = f.bundle.headers is not None  # observer data (headers.json): a re-appraisal never upgrades on it
    names = a.policy.names_for(requested)
    claims = ([("x-model-used", served.model_used)] if served.model_used else []) + [
        ("response model", m) for m in served.body_models
    ]
    wrong = [(where, name) for where, name in claims if name.lower() not in names]
    if (served.fallback_from is not None or (served.fallback_depth or 0) > 0) and served.model_used is None:
        wrong.append(("x-fallback-from / x-fallback-depth", "an unnamed fallback model"))
    if not claims and not wrong:
        # nothing claims another model (no recorded headers, no `model` in the body): the model itself is bound by
        # the attestation checks (app identity pinned per model), not by this one
        return Passed(
            "nothing in the bundle names a served model other than the requested one (no recorded "
            "headers, no model in the response body)",
            details={"observed": recorded},
        )
    if wrong:
        raise CheckFailed(
            f"requested {requested!r} but served by {', '.join(f'{n!r} ({w})' for w, n in wrong)}"
            + (f" (a fallback from {served.fallback_from!r})" if served.fallback_from else ""),
            reason="model_fallback",
            details={
                "expected": sorted(names),
                "got": [n for _, n in wrong],
                "fallback_from": served.fallback_from,
                "fallback_depth": served.fallback_depth,
            },
        )
    where = "x-model-used and the response body" if served.model_used else "the response body"
    return Passed(
        f"served by {requested!r} ({where})", details={"served": sorted({n for _, n in claims}), "observed": recorded}
    )
