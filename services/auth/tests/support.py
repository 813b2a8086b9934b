"""What the Google and GitHub adapter tests share: one PKCE pair, the state, and a
guard that a fake's route is installed."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import respx

STATE = "state-0123456789"
# RFC 7636, appendix B: this verifier's S256 challenge.
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def route(route: respx.Route | None) -> respx.Route:
    assert route is not None, "the fake is not installed"
    return route
