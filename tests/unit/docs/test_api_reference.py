"""The site's API reference (docs/api.md, rendered by mkdocstrings) documents every public name, and only those."""

from __future__ import annotations

import re

from helpers import ROOT

import skilltrain


def documented() -> set[str]:
    """The objects docs/api.md renders (`::: module.name`); the callbacks/ folder is the package skilltrain.callbacks."""
    found = re.findall(r"^::: (\S+)$", (ROOT / "docs" / "api.md").read_text(), flags=re.M)
    return {re.sub(r"^callbacks\.", "skilltrain.callbacks.", name) for name in found}


def test_the_api_reference_renders_every_public_name_where_it_is_defined():
    public = {f"{getattr(skilltrain, name).__module__}.{name}" for name in skilltrain.__all__}
    assert documented() == public, (f"missing from docs/api.md: {sorted(public - documented())}; "
                                    f"not public: {sorted(documented() - public)}")
