"""Training loops (pretrain, SFT, DPO) over a small shared core (`common`)."""
