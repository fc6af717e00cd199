"""How a connector compares what it searches for with what a vendor holds.

E-mail addresses trimmed and case-folded, names case-folded with runs of
whitespace collapsed, phone numbers as E.164 (default region NL), as the
identity view normalises them (`vergeet.identity`): a search hit is kept only
when one of these keys is equal, whatever spelling the vendor's own search
matched on.
"""
from __future__ import annotations

from typing import Any

import phonenumbers

DEFAULT_REGION = "NL"


def email_key(email: Any) -> str:
    """An e-mail address as compared; "" for none."""
    return email.strip().casefold() if isinstance(email, str) else ""


def name_key(name: Any) -> str:
    """A full name as compared; "" for none."""
    return " ".join(name.split()).casefold() if isinstance(name, str) else ""


def parse_phone(phone: Any) -> phonenumbers.PhoneNumber | None:
    """A phone number as `phonenumbers` reads it; None when it is none."""
    if not isinstance(phone, str) or not phone.strip():
        return None
    try:
        return phonenumbers.parse(phone, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return None


def phone_key(phone: Any) -> str | None:
    """A phone number in E.164; None when it is not one."""
    number = parse_phone(phone)
    return None if number is None else phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
