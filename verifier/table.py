"""Human-readable rendering of a verdict: one line per check, got-vs-expected on failures."""

from __future__ import annotations

import unicodedata
from typing import Any

_MARK = {"pass": "PASS", "fail": "FAIL", "indeterminate": "INDT", "skipped": "skip"}


def _safe(value: object) -> str:
    """Text quoted from upstream answers can hold newlines, ESC sequences or bidi controls: shown escaped, so it can
    neither forge a line of the table nor repaint the terminal."""
    text = str(value)
    return "".join(
        c if c.isprintable() and unicodedata.category(c) not in ("Cf", "Zl", "Zp") else repr(c)[1:-1] for c in text
    )


def render(verdict: dict[str, Any]) -> str:
    lines = []
    banner = f"verdict: {verdict['status'].upper()}"
    if verdict.get("id"):
        banner += f"   id {verdict['id']}"
    lines.append(banner)
    if verdict.get("simulator"):
        lines.append(
            f"!! SIMULATOR TRUST PROFILE ({verdict['trust_profile']}): test anchors, NOT evidence of real hardware !!"
        )
    subject = verdict.get("subject", {})
    nonce = verdict.get("nonce", {})
    lines.append(
        f"model {_safe(subject.get('model') or '-')}   signer {_safe(subject.get('signer') or '-')} "
        f"({_safe(subject.get('signing_algo') or '-')})"
    )
    lines.append(
        f"nonce {nonce.get('value') or '-'} ({nonce.get('origin') or '-'})   verified at "
        f"{verdict['times']['verified_at']}"
        f"   policy {verdict['policy']['id']} sha256:{verdict['policy']['sha256'][:16]}…"
    )
    width = max(len(c["id"]) for c in verdict["checks"])
    for check in verdict["checks"]:
        mark = _MARK.get(check["status"], check["status"])
        sev = "" if check["severity"] == "required" else f" [{check['severity']}]"
        reason = f" ({check['reason']})" if check.get("reason") else ""
        lines.append(f"  {mark}  {_safe(check['id']):<{width}}{sev}  {_safe(check['message'])}{_safe(reason)}")
        details = check.get("details") or {}
        if check["status"] != "pass" and ("expected" in details or "got" in details):
            lines.append(f"        {'':<{width}}  expected {_safe(details.get('expected'))}")
            lines.append(f"        {'':<{width}}  got      {_safe(details.get('got'))}")
    binding = subject.get("model_binding") or {}
    if binding:
        lines.append(
            f"  model bound by: {', '.join(binding.get('by') or ['nothing'])}"
            f"   (names {', '.join(binding.get('names') or []) or '-'})"
        )
    tls = subject.get("tls_binding") or {}
    if tls:
        how = f"{tls.get('connection')} connection, {tls.get('observed')}" if tls.get("bound") else tls.get("reason")
        lines.append(f"  TLS channel: {'bound' if tls.get('bound') else 'not bound'} ({_safe(how)})")
    vector = verdict.get("trust_vector") or {}
    if vector:
        lines.append("  trust vector: " + "   ".join(f"{aspect} {v['tier']}" for aspect, v in vector.items()))
        for aspect, v in vector.items():
            if v["tier"] != "affirming":
                lines.append(f"    {aspect}: {v['because']}")
    for note in verdict.get("notes", []):
        lines.append(f"  note: {_safe(note['code'])}: {_safe(note['message'])}")
    return "\n".join(lines)
