"""ResNets for 32x32 images, in plain torch (torchvision does not import beside the CPU torch here).

- `resnet18`: the CIFAR variant of ResNet-18 used throughout optimizer papers: a 3x3 stem with
  stride 1 and no max-pool, four stages of two basic blocks (64-128-256-512 channels),
  projection (1x1 conv + BN) shortcuts. 11.17M parameters.
- `resnet20` / `resnet56`: He et al. 2016, section 4.2: 3 stages of n blocks (16-32-64 channels,
  6n+2 layers) with parameter-free "option A" shortcuts (strided identity, zero-padded
  channels). 0.27M / 0.85M parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class PadShortcut(nn.Module):
    """Option A: subsample by `stride` and zero-pad the new channels; no parameters."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.stride, self.extra = stride, cout - cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        half = self.extra // 2
        return F.pad(x, (0, 0, 0, 0, half, self.extra - half))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, projection: bool):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(cin, cout, stride), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = conv3x3(cout, cout), nn.BatchNorm2d(cout)
        if stride == 1 and cin == cout:
            self.shortcut = nn.Identity()
        elif projection:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
        else:
            self.shortcut = PadShortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, widths: list[int], blocks: list[int], classes: int = 10, projection: bool = True):
        super().__init__()
        self.stem = nn.Sequential(conv3x3(3, widths[0]), nn.BatchNorm2d(widths[0]), nn.ReLU())
        layers, cin = [], widths[0]
        for i, (width, n) in enumerate(zip(widths, blocks, strict=True)):
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                layers.append(BasicBlock(cin, width, stride, projection))
                cin = width
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(cin, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


ARCHS = {
    "resnet18": dict(widths=[64, 128, 256, 512], blocks=[2, 2, 2, 2], projection=True),
    "resnet20": dict(widths=[16, 32, 64], blocks=[3, 3, 3], projection=False),
    "resnet56": dict(widths=[16, 32, 64], blocks=[9, 9, 9], projection=False),
}


def build_resnet(arch: str, classes: int = 10) -> ResNet:
    return ResNet(**ARCHS[arch], classes=classes)
