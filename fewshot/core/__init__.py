"""The engine's core: episodes, decoded data and splits, the sampler, the learner and adaptation interfaces, the registry, backbones, statistics."""
