"""The rehearsal: config/paper.yaml's DAG run offline on a CPU at the paper's shapes.

Only what cannot be reached offline is replaced, at its boundary, by something of the same shape:
a hub cache holding Qwen2.5-0.5B's exact config (fewer layers, random weights) with the real
Qwen2.5 tokenizer rebuilt offline, a tiny stand-in for the style generator, the hub datasets in
the `datasets` cache with realistic rows, and local servers speaking OpenAI's chat-completions
and NVIDIA's reward formats. `python -m stylized_dpo.rehearsal` (`make rehearsal`) builds them,
runs Snakemake with `config/paper.yaml` and `config/rehearsal.yaml`, and reports.
"""
