"""Recording a prompt suite in the tracking database, once, by its content hash (the suites themselves are data:
:mod:`orchestrator.suites`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.suites import PromptSuite
    from orchestrator.tracking.store import TrackingStore


def record_suite(store: TrackingStore, suite: PromptSuite) -> dict[str, int]:
    """Record the suite once (checked by content hash); returns prompt name -> prompt id."""
    return store.ensure_prompt_suite(
        suite.name,
        [{"name": p.name, "text": p.text, "negative": suite.negative_for(p), "seeds": list(p.seeds)}
         for p in suite.prompts],
        description=suite.description,
        content_sha256=suite.content_sha256,
    )
