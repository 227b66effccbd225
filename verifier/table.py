"""Human-readable rendering of a verdict: one line per check, got-vs-expected on failures."""

from __future__ import annotations

from typing import Any

_MARK = {"pass": "PASS", "fail": "FAIL", "indeterminate": "INDT", "skipped": "skip"}


def render(verdict: dict[str, Any]) -> str:
    lines = []
    banner = f"verdict: {verdict['status'].upper()}"
    if verdict.get("id"):
        banner += f"   id {verdict['id']}"
    lines.append(banner)
    if verdict.get("simulator"):
        lines.append(f"!! SIMULATOR TRUST PROFILE ({verdict['trust_profile']}): test anchors, NOT evidence of real hardware !!")
    subject = verdict.get("subject", {})
    nonce = verdict.get("nonce", {})
    lines.append(
        f"model {subject.get('model') or '-'}   signer {subject.get('signer') or '-'} ({subject.get('signing_algo') or '-'})"
    )
    lines.append(
        f"nonce {nonce.get('value') or '-'} ({nonce.get('origin') or '-'})   verified at {verdict['times']['verified_at']}"
        f"   policy {verdict['policy']['id']} sha256:{verdict['policy']['sha256'][:16]}…"
    )
    width = max(len(c["id"]) for c in verdict["checks"])
    for check in verdict["checks"]:
        mark = _MARK.get(check["status"], check["status"])
        sev = "" if check["severity"] == "required" else f" [{check['severity']}]"
        reason = f" ({check['reason']})" if check.get("reason") else ""
        lines.append(f"  {mark}  {check['id']:<{width}}{sev}  {check['message']}{reason}")
        details = check.get("details") or {}
        if check["status"] != "pass" and ("expected" in details or "got" in details):
            lines.append(f"        {'':<{width}}  expected {details.get('expected')}")
            lines.append(f"        {'':<{width}}  got      {details.get('got')}")
    binding = subject.get("model_binding") or {}
    if binding:
        lines.append(f"  model bound by: {', '.join(binding.get('by') or ['nothing'])}"
                     f"   (names {', '.join(binding.get('names') or []) or '-'})")
    vector = verdict.get("trust_vector") or {}
    if vector:
        lines.append("  trust vector: " + "   ".join(f"{aspect} {v['tier']}" for aspect, v in vector.items()))
        for aspect, v in vector.items():
            if v["tier"] != "affirming":
                lines.append(f"    {aspect}: {v['because']}")
    for note in verdict.get("notes", []):
        lines.append(f"  note: {note['code']}: {note['message']}")
    return "\n".join(lines)
