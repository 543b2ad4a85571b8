"""Model-card templates (Jinja, rendered through `huggingface_hub.ModelCard.from_template`).

The templates live here, inside the package, so that an installed hf_unmask can render them; `model_cards/` at the
repository root points here. The renderer is `hf_unmask.strategies.card`.
"""

from pathlib import Path

TEMPLATE_DIR = Path(__file__).parent
POLICY_TEMPLATE = TEMPLATE_DIR / "policy_card.md"
STRATEGY_TEMPLATE = TEMPLATE_DIR / "strategy_card.md"
