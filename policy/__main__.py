"""tfbox CrossGuard policy pack: `pulumi preview --policy-pack policy` (make preview and the PR workflow).

The engine runs this file with only the policy directory on sys.path; the repository root is added so
`policy.pack` and `policy.rules` import the same way the unit tests import them.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack

from policy.pack import PACK_NAME, build_policies

PolicyPack(name=PACK_NAME, enforcement_level=EnforcementLevel.MANDATORY, policies=build_policies())
