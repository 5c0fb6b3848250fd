"""Feature extractors for teachers that see images, named in ``ppo.yml`` (nothing is eval'd).

``minatar_cnn`` is the network of the MinAtar paper (Young & Tian 2019, arXiv 1903.03176):
one 3×3 convolution with 16 channels (stride 1, no padding), ReLU, then a 128-unit layer and
ReLU, on the binary ``(10, 10, C)`` frames as they are (channels last, no normaliser).
"""

from __future__ import annotations

import gymnasium as gym
import torch
import torch.nn as nn
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor


class MinAtarCNN(BaseFeaturesExtractor):
    """Conv 3×3 (16) → ReLU → flatten → Linear (``features_dim``, 128) → ReLU, channels-last input."""

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 128, channels: int = 16) -> None:
        super().__init__(observation_space, features_dim)
        height, width, depth = observation_space.shape
        self.conv = nn.Sequential(nn.Conv2d(depth, channels, kernel_size=3), nn.ReLU(), nn.Flatten())
        self.linear = nn.Sequential(nn.Linear(channels * (height - 2) * (width - 2), features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """Features of a batch ``(n, H, W, C)`` of frames."""
        return self.linear(self.conv(observations.permute(0, 3, 1, 2)))


#: The names ``policy_kwargs.features_extractor`` may take in a hyperparameter file.
FEATURE_EXTRACTORS = {"minatar_cnn": MinAtarCNN}
