"""Time-based one-time passwords (RFC 6238, with pyotp): 6 digits, SHA-1, 30-second steps,
the authenticator apps' defaults. A code is accepted for the current step and one step
either side (a phone's clock may be a little off); which step matched is returned so the
caller can refuse that step, and every earlier one, from then on (no replay).
"""

from __future__ import annotations

import hmac
import time

import pyotp

STEP = 30
DIGITS = 6
DRIFT = 1  # steps accepted either side of now
ISSUER = "Altcraft"


def new_secret() -> str:
    return pyotp.random_base32()  # 160 bits, RFC 4226's recommended length


def matching_step(secret: str, code: str, at: float | None = None) -> int | None:
    """The time step whose code `code` is (within DRIFT steps of `at`), or None."""
    code = (code or "").strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP)
    now_step = int((time.time() if at is None else at) // STEP)
    for step in range(now_step - DRIFT, now_step + DRIFT + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def provisioning_uri(secret: str, login: str) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP).provisioning_uri(name=login, issuer_name=ISSUER)
