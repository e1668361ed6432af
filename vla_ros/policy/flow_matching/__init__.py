"""The flow-matching Vision-Language-Action policy (pi0-style deep fusion or SmolVLA-style cross-attention), ROS-free.

Modules, one job each:

- ``config``       the checkpoint's ``config.json``: architecture + I/O spec, validated key by key;
- ``backbone``     the transformers model families (Gemma, Llama) used for the language backbone
                   and the action expert;
- ``joint_layer``  one decoder layer over the concatenated prefix/suffix streams (ONE attention);
- ``cross_layer``  one expert layer cross-attending to the backbone's per-layer keys/values (SmolVLA);
- ``vision``       SigLIP image encoder + projector into the language width;
- ``smolvlm_vision`` SmolVLM's vision transformer + pixel-shuffle connector (SmolVLA);
- ``dual_vision``  SigLIP + DINOv2 with FiLM, aggregation tokens and a text-conditioned router;
- ``expert``       the suffix embedder: state token, noisy actions fused with the time embedding
                   (pi0) or the adaRMS time condition (pi05);
- ``adarms``       pi05's time-conditioned RMSNorm and gated residuals for the expert;
- ``model``        ``FlowMatchingVLA``: prefix/suffix embedding, joint and cached passes, loss;
- ``sampler``      Euler integration (cached or naive) with Real-Time Chunking guidance;
- ``action_space`` observation -> state vector, absolute <-> delta actions;
- ``policy``       ``FlowMatchingPolicy``: load/infer/save, the `vla_ros.policy.base.Policy` face;
- ``tiny``         ``make_tiny_checkpoint``: random small checkpoints for tests and demos;
- ``train``        a small training loop for demos.

Importing this package does not import torch; import the submodules you need.
"""
