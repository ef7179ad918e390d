"""The PyTorch reference generator (junyanz/pytorch-CycleGAN-and-pix2pix `ResnetGenerator`).

Written out as that repository builds it (InstanceNorm without affine, reflection padding,
no dropout), so its state dicts are the ones `training.export.import_torch` reads and its
outputs are what the Keras generator must reproduce. Used by tests/training/test_export.py
(import parity) and bench/torch_reference.py (speed side by side). torch is imported inside
the function: it is an optional extra (`pip install torch==2.13.0`, the CPU wheel).
"""

from __future__ import annotations


def resnet_generator(ngf: int = 64, n_blocks: int = 9):
    """An eval-mode `ResnetGenerator(3, 3, ngf, norm_layer=InstanceNorm2d, n_blocks)`, default init."""
    import torch
    from torch import nn

    class ResnetBlock(nn.Module):
        def __init__(self, dim: int):
            super().__init__()
            self.conv_block = nn.Sequential(
                nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=True), nn.InstanceNorm2d(dim), nn.ReLU(True),
                nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=True), nn.InstanceNorm2d(dim))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.conv_block(x)

    class ResnetGenerator(nn.Module):
        def __init__(self):
            super().__init__()
            model = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7, bias=True), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
            for i in range(2):
                mult = 2**i
                model += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=True),
                          nn.InstanceNorm2d(ngf * mult * 2), nn.ReLU(True)]
            model += [ResnetBlock(ngf * 4) for _ in range(n_blocks)]
            for i in range(2):
                mult = 2 ** (2 - i)
                model += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1,
                                             bias=True),
                          nn.InstanceNorm2d(ngf * mult // 2), nn.ReLU(True)]
            model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
            self.model = nn.Sequential(*model)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(x)

    return ResnetGenerator().eval()


def randomized(net, seed: int = 0, scale: float = 0.3):
    """`net` with every parameter drawn from U(-scale, scale): non-trivial biases and asymmetric
    kernels, so a flipped or transposed kernel in an import would show in the outputs."""
    import torch

    torch.manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_(-scale, scale)
    return net


def state_arrays(net) -> dict:
    """The module's state dict as numpy arrays (what `training.export.generator_from_torch` takes)."""
    return {k: v.detach().numpy() for k, v in net.state_dict().items()}
