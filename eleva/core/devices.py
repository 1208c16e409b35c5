"""A short label for the device of a login, from its User-Agent header.

ua-parser (the maintained port of the uap-core rules) names the browser and the system;
the label is what a person recognises in a list of sessions: "Firefox 133 on Windows".
"""

from __future__ import annotations

from ua_parser import parse

MAX_LABEL = 100
UNKNOWN = "Unknown device"
_OS_NAMES = {"Mac OS X": "macOS", "Other": ""}


def device_label(user_agent: str | None) -> str:
    """``"<browser> <major> on <system>"``, as much of it as the header tells."""
    if not user_agent or not user_agent.strip():
        return UNKNOWN
    result = parse(user_agent[:1000])  # the rules are regular expressions: bound the input
    browser = ""
    if result.user_agent is not None and result.user_agent.family != "Other":
        browser = result.user_agent.family
        if result.user_agent.major:
            browser += f" {result.user_agent.major}"
    system = ""
    if result.os is not None:
        system = _OS_NAMES.get(result.os.family, result.os.family)
    if browser and system:
        return f"{browser} on {system}"[:MAX_LABEL]
    return (browser or system or UNKNOWN)[:MAX_LABEL]
