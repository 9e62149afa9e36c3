"""An offline Hugging Face hub cache holding the paper's models at their real shapes.

Files go where `huggingface_hub` puts a download (`$HF_HOME/hub/models--<org>--<name>/`:
`blobs/`, `snapshots/<commit>/<file>` linking to the blobs, `refs/main`), so with
`HF_HUB_OFFLINE=1` a plain `from_pretrained("Qwen/Qwen2.5-0.5B")` resolves through the same code
the paper's run takes after a download.

- `Qwen/Qwen2.5-0.5B`: the hub's config.json verbatim except `num_hidden_layers` (random weights,
  saved in bfloat16 as on the hub), its generation config, and the real tokenizer and base chat
  template (`rehearsal.qwen`).
- the style generator (paper: `google/gemma-3-12b-it`): a one-layer `Gemma3ForCausalLM` with a
  small byte-level BPE plus Gemma's turn tokens and Gemma 3's chat template (no system role: a
  system message is merged into the first user turn). The real model is multimodal
  (`Gemma3ForConditionalGeneration`) with a 262k SentencePiece vocabulary, neither of which can be
  rebuilt offline. Its weights are random except that one hidden direction is constant and
  `<end_of_turn>` reads it, so every step ends the answer with probability ~`STOP_PROBABILITY`:
  answers of varied, mostly short lengths, a few empty, as a real generator's have.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from stylized_dpo.hashing import sha256_file, snapshot_commit
from stylized_dpo.model import train_tokenizer
from stylized_dpo.rehearsal import qwen

GENERATOR_REPO_ID = "google/gemma-3-12b-it"
STOP_PROBABILITY = 0.08
"""Per-step probability that the stand-in generator ends its answer."""

# Gemma 3's chat template (tokenizer_config.json of google/gemma-3-12b-it).
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}\n"
    "    {%- else -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}\n"
    "    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    '    {%- set first_user_prefix = "" -%}\n'
    "    {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    '        {{ raise_exception("Conversation roles must alternate '
    'user/assistant/user/assistant/...") }}\n'
    "    {%- endif -%}\n"
    "    {%- if (message['role'] == 'assistant') -%}\n"
    '        {%- set role = "model" -%}\n'
    "    {%- else -%}\n"
    "        {%- set role = message['role'] -%}\n"
    "    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n"
    "        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n"
    "        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n"
    "                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n"
    "                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n"
    "        {%- endfor -%}\n"
    "    {%- else -%}\n"
    '        {{ raise_exception("Invalid content type") }}\n'
    "    {%- endif -%}\n"
    "    {{ '<end_of_turn>\\n' }}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{'<start_of_turn>model\\n'}}\n"
    "{%- endif -%}\n"
)
GEMMA_TOKENS = ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>"]


def repo_folder(hf_home: str | os.PathLike[str], repo_id: str, repo_type: str = "model") -> Path:
    """`$HF_HOME/hub/<type>s--<org>--<name>`, huggingface_hub's cache folder of one repository."""
    return Path(hf_home) / "hub" / f"{repo_type}s--{repo_id.replace('/', '--')}"


def write_snapshot(
    hf_home: str | os.PathLike[str], repo_id: str, files: Path, repo_type: str = "model"
) -> Path:
    """Place the files of folder `files` as the `main` snapshot of `repo_id` in the hub cache;
    returns the snapshot folder. The commit id is a hash of the contents, as a rebuild with the
    same contents is the same revision."""
    repo = repo_folder(hf_home, repo_id, repo_type)
    blobs = repo / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    listing = []
    entries = sorted(p for p in files.rglob("*") if p.is_file())
    digests = {}
    for path in entries:
        digests[path] = sha256_file(path)
        listing.append(f"{path.relative_to(files)} {digests[path]}")
    commit = snapshot_commit(listing)
    snapshot = repo / "snapshots" / commit
    if snapshot.exists():
        shutil.rmtree(snapshot)
    for path in entries:
        blob = blobs / digests[path]
        if not blob.exists():
            shutil.copyfile(path, blob)
        link = snapshot / path.relative_to(files)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def _save_tokenizer(tokenizer: Any, out: Path, tokenizer_class: str) -> None:
    tokenizer.save_pretrained(out)
    # As on the hub: tokenizer_config.json names the model's tokenizer class (AutoTokenizer
    # dispatches on it) and holds the chat template (these repositories predate
    # chat_template.jinja).
    path = out / "tokenizer_config.json"
    cfg = json.loads(path.read_text())
    cfg["tokenizer_class"] = tokenizer_class
    cfg["chat_template"] = tokenizer.chat_template
    (out / "chat_template.jinja").unlink()
    path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False))


def write_qwen(hf_home: str | os.PathLike[str], n_layers: int, seed: int = 0) -> Path:
    """Qwen/Qwen2.5-0.5B with `n_layers` layers and random weights, in the hub cache."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = dict(qwen.CONFIG, num_hidden_layers=n_layers, max_window_layers=n_layers)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(Qwen2Config(**config)).to(torch.bfloat16)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        model.save_pretrained(out)
        # The hub's own config.json (older transformers' field names, e.g. rope_theta), so the
        # loader parses what it parses after a download.
        (out / "config.json").write_text(json.dumps(config, indent=2))
        (out / "generation_config.json").write_text(json.dumps(qwen.GENERATION_CONFIG, indent=2))
        _save_tokenizer(qwen.tokenizer(), out, "Qwen2Tokenizer")
        return write_snapshot(hf_home, qwen.REPO_ID, out)


def write_generator(
    hf_home: str | os.PathLike[str],
    texts: Iterable[str],
    repo_id: str = GENERATOR_REPO_ID,
    temperature: float = 0.7,
    seed: int = 0,
) -> Path:
    """The tiny stand-in of the style generator (see the module docstring), in the hub cache;
    its stop probability holds when sampling at `temperature` (synth.temperature). Its
    tokenizer is a 4,096-token byte-level BPE learnt on `texts`: sampling sorts the whole
    vocabulary at every step, which at Gemma's or Qwen's size would dominate a CPU run."""
    from tokenizers import AddedToken
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    tokenizer = train_tokenizer(texts, vocab_size=4096, model_max_length=131072)
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in GEMMA_TOKENS])
    tokenizer.pad_token, tokenizer.eos_token, tokenizer.bos_token = "<pad>", "<eos>", "<bos>"
    tokenizer.chat_template = GEMMA3_CHAT_TEMPLATE
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in GEMMA_TOKENS}
    hidden = 64
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        max_position_embeddings=131072,
        tie_word_embeddings=False,
        pad_token_id=ids["<pad>"],
        bos_token_id=ids["<bos>"],
        eos_token_id=[ids["<eos>"], ids["<end_of_turn>"]],
    )
    torch.manual_seed(seed)
    model = Gemma3ForCausalLM(config)
    with torch.no_grad():
        # Hidden unit 0 is the same large value for every token (the embedding is scaled by
        # sqrt(hidden) and the final norm divides by the RMS), so after the last norm it is
        # ~sqrt(hidden); the other units carry the random signal.
        embed = model.model.embed_tokens.weight
        embed[:, 0] = 2.0
        head = model.lm_head.weight
        head[:, 0] = torch.randn(head.shape[0]) * 0.25
        # Token logits then vary with std ~sqrt(hidden)*0.25 = 2 (log-normal mass at the
        # sampling temperature); <end_of_turn> gets the logit that makes it STOP_PROBABILITY of
        # the softmax mass.
        others = head.shape[0] * math.exp((2.0 / temperature) ** 2 / 2)
        odds = STOP_PROBABILITY / (1 - STOP_PROBABILITY)
        stop_logit = temperature * math.log(odds * others)
        head[ids["<end_of_turn>"]] = 0.0
        head[ids["<end_of_turn>"], 0] = stop_logit / math.sqrt(hidden)
    model.generation_config.eos_token_id = [ids["<eos>"], ids["<end_of_turn>"]]
    model.generation_config.pad_token_id = ids["<pad>"]
    model.generation_config.bos_token_id = ids["<bos>"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        model.save_pretrained(out)
        _save_tokenizer(tokenizer, out, "TokenizersBackend")
        return write_snapshot(hf_home, repo_id, out)
