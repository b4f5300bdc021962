"""Impact: what the current selection (or a saved subset) removes from its base, group by group."""

from __future__ import annotations

from ui import impact, page, selection_bar, state, style

name, con, info, sel = page.open_dataset(
    "Impact",
    state.IMPACT_PAGE,
    "What a curation filter removes, by concept, cluster, domain, language and score.",
    "audit",
)
style.hero(
    f"Filter impact · {name}",
    "What the rows you picked keep of their base, group by group: retention by concept, "
    "cluster, domain, caption language and score; the groups removed disproportionately; and "
    "the long tail before and after.",
)
selection_bar.live_view(name, con, info["rows"], sel, impact.page_view)
