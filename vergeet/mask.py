"""Masked identifiers for screens: enough to recognise, not enough to read."""
from __future__ import annotations


def mask_email(email: str) -> str:
    """`jan.jansen@gmail.com` -> `j***@g***.com`."""
    local, _, domain = email.strip().partition("@")
    host, dot, tld = domain.rpartition(".")
    if not dot:
        host, tld = domain, ""
    return f"{local[:1]}***@{host[:1]}***{dot}{tld}"


def mask_phone(phone: str) -> str:
    """`+31612345678` -> `+316******78`."""
    digits = phone.strip()
    return digits[:4] + "*" * max(len(digits) - 6, 0) + digits[-2:] if len(digits) > 6 else "***"


def mask(kind: str, value: str) -> str:
    return mask_email(value) if kind == "email" else mask_phone(value)
