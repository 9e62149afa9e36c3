"""The `transformers` generator backend: a local chat model through `generate` (batched,
left-padded, one seed per batch, so `rewrite` keeps batches whole across restarts)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stylized_dpo.synth.generator import Completion, Request, render_chat

if TYPE_CHECKING:
    from stylized_dpo.synth.backends import SynthConfig


class TransformersBackend:
    """A local chat model through transformers `generate` (batched, left-padded, seeded)."""

    name = "transformers"
    whole_batches = True
    """It samples a batch with one generator: a restarted run redoes the whole batch."""

    def __init__(self, cfg: SynthConfig):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.cfg = cfg
        self._torch = torch
        device = cfg.transformers.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(cfg.model)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(
            cfg.model, dtype=getattr(torch, cfg.transformers.dtype)
        ).to(device)
        self.model.eval()
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}

    def generate(self, requests: list[Request]) -> list[Completion]:
        torch = self._torch
        texts = [render_chat(self.tokenizer, r.messages) for r in requests]
        batch = self.tokenizer(
            texts, return_tensors="pt", padding=True, add_special_tokens=False
        ).to(self.device)
        torch.manual_seed(requests[0].seed)
        sample = self.cfg.temperature > 0
        with torch.no_grad():
            out = self.model.generate(
                **batch,
                max_new_tokens=self.cfg.max_new_tokens,
                do_sample=sample,
                temperature=self.cfg.temperature if sample else None,
                top_p=self.cfg.top_p if sample else None,
                top_k=0 if sample else None,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new = out[:, batch["input_ids"].shape[1] :]
        completions = []
        for row in new.tolist():
            ended = next((i for i, t in enumerate(row) if t in self.eos_ids), None)
            tokens = row if ended is None else row[:ended]
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            completions.append(Completion(text, "stop" if ended is not None else "length"))
        return completions
