"""What counts as whitespace around a value, for every layer that trims one."""

from __future__ import annotations

# Whitespace as the spec's patterns mean it: `\s` in JSON Schema (ECMA-262) is exactly
# these characters. Python's own str.strip() differs (it also strips U+001C–U+001F and
# U+0085, and keeps U+FEFF), so a value the spec calls non-blank could be trimmed to "".
WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
