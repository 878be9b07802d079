"""Training stages (pretrain, specialize, baseline) and the token-budget plan: recipe sections, data mix, launchers."""
