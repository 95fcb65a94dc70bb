"""What a finished call leg leaves behind: the CDR row (see ``ivr/store/cdr.py``)."""
from __future__ import annotations

from .visitors import caller_kind, source_address


def outcome(call) -> str:
    if call.answered_at is not None:
        return "answered"
    reason = call.end_reason or ""
    for name in ("busy", "no-answer", "rejected", "cancelled"):
        if reason == name:
            return name
    if reason.startswith("rejected-"):
        status = reason.split("-", 1)[1]
        return "busy" if status in ("486", "600") else "rejected"
    return "failed"


def call_summary(call) -> dict:
    stats = getattr(call, "rtp_stats", None) or {}
    received = stats.get("packets_received") or 0
    lost = max(0, stats.get("lost") or 0)
    direction = getattr(call, "direction", "inbound")
    caller = call.caller
    session = call.session
    if direction == "outbound":
        from_number, to_number = caller.number, call.variables.get("target") or call.called
    else:
        from_number = None if caller.private else caller.number
        to_number = call.called
    return {
        "leg_id": call.id,
        "direction": direction,
        # Outbound legs get their role (agent / customer) from the click-to-call session.
        "role": "inbound" if direction == "inbound" else None,
        "from_number": from_number,
        "to_number": to_number,
        "caller_id": caller.name,
        "setup_at": call.started_at,
        "answer_at": call.answered_at,
        "end_at": call.ended_at,
        "outcome": outcome(call),
        "end_reason": call.end_reason,
        "sip_status": getattr(session, "final_status", None),
        "sip_reason": getattr(session, "final_reason", None),
        "hangup_side": getattr(call, "hangup_side", None),
        "route": call.variables.get("route"),  # which route matched (dialplan/service.py)
        "flow": call.variables.get("flow"),
        "recording": call.variables.get("recording"),  # set by the record verb
        "digits": list(call.gathered),
        "speech": list(getattr(call, "speech_heard", ())),  # what speech input heard
        "rtp_packets_lost": lost,
        "rtp_loss_pct": round(100.0 * lost / (lost + received), 2) if lost + received else 0.0,
        "rtp_jitter_ms": stats.get("jitter_ms"),
        **rtcp_summary(stats),
        "dtmf_by_mode": dict(call.digits_by_mode),
        "path": list(call.path),
        # who called (extension, trunk, anonymous, webrtc: an anonymous browser caller)
        "caller_kind": caller_kind(call),
        "source_address": source_address(call),  # where the INVITE came from
        **encryption_summary(call, stats),
    }


def encryption_summary(call, stats: dict) -> dict:
    """The CDR's encryption fields: the leg's SIP transport (udp, tcp, tls), its media
    (``srtp:<suite>`` or ``none``) and, for SRTP, the packets dropped as forged or
    wrongly keyed and as replays."""
    media = getattr(call, "media", None)
    encryption = getattr(media, "media_encryption", "none")
    encrypted = encryption != "none"
    return {
        "sip_transport": getattr(media, "sip_transport", None),
        "media_encryption": encryption,
        "srtp_auth_failures": stats.get("srtp_auth_failures", 0) if encrypted else None,
        "srtp_replays": stats.get("srtp_replays", 0) if encrypted else None,
    }


def rtcp_summary(stats: dict) -> dict:
    """The CDR's RTCP fields: what the far end's last report said about our stream (None
    when it sent none about it) and how many reports went each way."""
    peer = stats.get("peer") or {}
    rtt = peer.get("rtt_ms")
    jitter = peer.get("jitter_ms")
    return {
        "rtcp_remote_loss_pct": peer.get("loss_pct"),
        "rtcp_remote_lost": peer.get("cumulative_lost"),
        "rtcp_remote_jitter_ms": round(jitter, 3) if jitter is not None else None,
        "rtcp_rtt_ms": round(rtt, 3) if rtt is not None else None,
        "rtcp_sent": stats.get("rtcp_sent"),
        "rtcp_received": stats.get("rtcp_received"),
    }
