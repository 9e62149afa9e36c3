"""stylized-dpo: how the style of preference data shapes a language model after DPO."""
