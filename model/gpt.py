"""Build a megatron-core GPTModel from a ModelSpec, and the distributed set-up shared by train and evaluate."""
from __future__ import annotations

import os

import torch

from model.presets import ModelSpec


def init_distributed(tp: int, pp: int, seed: int) -> str:
    """Initialise torch.distributed (gloo on CPU, nccl on GPU) and megatron parallel state; returns the device."""
    from megatron.core import parallel_state
    from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed

    use_cuda = torch.cuda.is_available()
    if not use_cuda:
        from model import cpu_compat

        cpu_compat.enable()
    if "RANK" not in os.environ:  # single process without torchrun
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_free_port()))
    if use_cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if use_cuda else "gloo")
    parallel_state.destroy_model_parallel()
    parallel_state.initialize_model_parallel(tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp)
    torch.manual_seed(seed)
    model_parallel_cuda_manual_seed(seed)
    return "cuda" if use_cuda else "cpu"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


RECOMPUTE = {
    "none": {},
    # recompute each layer's core attention in the backward pass (megatron-core's selective recompute)
    "selective": {"recompute_granularity": "selective"},
    # keep only each layer's input; recompute the whole layer in the backward pass
    "full": {"recompute_granularity": "full", "recompute_method": "uniform", "recompute_num_layers": 1},
}


def transformer_config(spec: ModelSpec, bf16: bool = False, recompute: str = "none"):
    from megatron.core.transformer.transformer_config import TransformerConfig

    pp = _pp_size()
    return TransformerConfig(
        **RECOMPUTE[recompute],
        num_layers=spec.num_layers,
        hidden_size=spec.hidden_size,
        ffn_hidden_size=spec.ffn,
        num_attention_heads=spec.num_attention_heads,
        num_query_groups=spec.kv_heads,
        normalization=spec.normalization,
        gated_linear_unit=spec.swiglu,
        activation_func=torch.nn.functional.silu if spec.swiglu else torch.nn.functional.gelu,
        num_moe_experts=spec.num_experts or None,
        moe_router_topk=min(2, spec.num_experts) if spec.num_experts else 2,
        moe_token_dispatcher_type="allgather",
        moe_aux_loss_coeff=1e-2 if spec.num_experts else 0.0,
        add_bias_linear=not spec.num_experts,
        hidden_dropout=spec.hidden_dropout,
        attention_dropout=spec.attention_dropout,
        layernorm_epsilon=1e-5,
        init_method_std=0.02,
        use_cpu_initialization=not torch.cuda.is_available(),
        pipeline_dtype=torch.bfloat16 if bf16 else torch.float32,
        bf16=bf16,
        params_dtype=torch.bfloat16 if bf16 else torch.float32,
        tensor_model_parallel_size=_tp_size(),
        pipeline_model_parallel_size=pp,
        batch_p2p_comm=torch.cuda.is_available(),  # gloo + batched p2p gives wrong numbers (stack notes)
    )


def _tp_size() -> int:
    from megatron.core import parallel_state

    return parallel_state.get_tensor_model_parallel_world_size()


def _pp_size() -> int:
    from megatron.core import parallel_state

    return parallel_state.get_pipeline_model_parallel_world_size()


def layer_spec(spec: ModelSpec, attention: str = "sdpa"):
    """Transformer Engine spec on GPU when TE is installed, else the local (pure torch) spec with the chosen core
    attention: 'sdpa' (torch's fused scaled_dot_product_attention, model/attention.py) or 'unfused' (megatron-core's
    DotProductAttention)."""
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec

    from model.attention import use_backend

    if torch.cuda.is_available():
        try:
            import transformer_engine  # noqa: F401
            from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_with_transformer_engine_spec

            return get_gpt_layer_with_transformer_engine_spec(num_experts=spec.num_experts or None)
        except ImportError:
            pass
    local = get_gpt_layer_local_spec(num_experts=spec.num_experts or None, normalization=spec.normalization)
    return use_backend(local, attention)


def build_model(spec: ModelSpec, bf16: bool, attention: str, recompute: str):
    """The GPTModel chunk for this pipeline stage (`attention`: 'sdpa' | 'unfused'; `recompute`: 'none' |
    'selective' | 'full'; training passes its job's values, scoring 'sdpa' and 'none')."""
    from megatron.core import parallel_state
    from megatron.core.models.gpt.gpt_model import GPTModel

    config = transformer_config(spec, bf16, recompute)
    if spec.num_experts:
        _moe_without_te()
    model = GPTModel(
        config=config,
        transformer_layer_spec=layer_spec(spec, attention),
        vocab_size=spec.vocab_size,
        max_sequence_length=spec.seq_length,
        pre_process=parallel_state.is_pipeline_first_stage(),
        post_process=parallel_state.is_pipeline_last_stage(),
        share_embeddings_and_output_weights=spec.tie_embeddings,
        position_embedding_type=spec.position_embedding,
    )
    if torch.cuda.is_available():
        model.cuda(torch.cuda.current_device())
    if bf16:
        # As Megatron-LM does: every parameter and buffer in bf16 (the local spec's torch norms are created in
        # fp32 and would otherwise meet bf16 activations), fp32 outputs from the last stage.
        from megatron.core.transformer.module import Float16Module

        model = Float16Module(config, model)
    return model


def _moe_without_te() -> None:
    """megatron-core 0.16.1's router references `te_general_gemm`, a name only defined when Transformer Engine
    imports; without TE it raises NameError. Define it as absent so the pure-torch path is taken."""
    from megatron.core.transformer.moe import moe_utils

    if not hasattr(moe_utils, "te_general_gemm"):
        moe_utils.te_general_gemm = None
