# The config sections the rules read, each typed once by its class (which holds the section's
# defaults and value checks). Rule params still pass the config's own mappings, which the jobs
# parse with the same classes (and where the run seed reaches them). Included by compute.smk,
# the first rule file that reads them.
from stylized_dpo.evals.generate import SamplingConfig
from stylized_dpo.evals.helm import HelmConfig
from stylized_dpo.evals.judge import JudgeConfig
from stylized_dpo.evals.sycophancy import SycophancyConfig
from stylized_dpo.evals.winrate import WinRateConfig
from stylized_dpo.synth.backends import SynthConfig
from stylized_dpo.workflow_config import (
    BaseModelConfig,
    CheckpointsConfig,
    ComputeConfig,
    EvalPromptsConfig,
)

BASE_MODEL = BaseModelConfig.in_config(config)
EVAL_PROMPTS = EvalPromptsConfig.in_config(config)
CHECKPOINTS = CheckpointsConfig.in_config(config)
COMPUTE = ComputeConfig.in_config(config)
GENERATION = SamplingConfig.in_config(config)
SYNTH = SynthConfig.in_config(config)
JUDGE = JudgeConfig.in_config(config)
WIN_RATES = WinRateConfig.in_config(config)
HELM = HelmConfig.in_config(config)
# Without a `sycophancy` section the probe is left out (as with source local and no path).
SYCOPHANCY = (
    SycophancyConfig.in_config(config)
    if "sycophancy" in config
    else SycophancyConfig(source="local")
)
