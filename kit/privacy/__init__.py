"""Privacy: which items carry personal data (:mod:`kit.privacy.detect`), and the policy that keeps them away
from third-party arms (:mod:`kit.privacy.policy`)."""

from kit.privacy.detect import KINDS, PiiMatch, find_pii
from kit.privacy.policy import (pii_share, privacy_hook, private_cost_option, route_private, scan_items,
                                withhold_pii)

__all__ = ["KINDS", "PiiMatch", "find_pii", "pii_share", "privacy_hook", "private_cost_option", "route_private",
           "scan_items", "withhold_pii"]
