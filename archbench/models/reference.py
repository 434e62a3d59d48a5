"""archbench's own reference builders for what no library ships in the needed form.

Each builder's keyword arguments are its options (``NAME:key=value``); see
:mod:`archbench.models.registry` for the option types.
"""

from __future__ import annotations

from typing import Literal

from archbench.models.registry import InputSpec, Shape, register, require

DEFAULT_SEQ = 512


def _positive(model: str, **values) -> None:
    for key, value in values.items():
        require(value > 0, f"option {key}={value} of {model}: must be positive")


def _image(*shape: int) -> InputSpec:
    return InputSpec("image", tuple(shape))


def _sequence(dim: int) -> InputSpec:
    return InputSpec("sequence", (DEFAULT_SEQ, dim))


@register("mlp", family="fcn", default_input=lambda o: InputSpec("image", tuple(o["input"])))
def mlp(input: Shape = (1, 28, 28), hidden: Shape = (256, 256), outputs: int = 10, bias: bool = True):
    """Fully connected net: flatten the input, hidden ReLU layers, a linear output."""
    from torch import nn

    _positive("mlp", outputs=outputs)
    features = 1
    for size in input:
        features *= size
    layers: list[nn.Module] = [nn.Flatten()]
    for width in hidden:
        layers += [nn.Linear(features, width, bias=bias), nn.ReLU()]
        features = width
    layers.append(nn.Linear(features, outputs, bias=bias))
    return nn.Sequential(*layers)


def _recurrent(cls_name: str, model: str, input: int, hidden: int, layers: int, bidirectional: bool, **extra):
    from torch import nn

    _positive(model, input=input, hidden=hidden, layers=layers)
    cls = getattr(nn, cls_name)
    return cls(input, hidden, num_layers=layers, bidirectional=bidirectional, batch_first=True, **extra)


@register("rnn", family="rnn", default_input=lambda o: _sequence(o["input"]))
def rnn(input: int = 512, hidden: int = 512, layers: int = 1, bidirectional: bool = False,
        nonlinearity: Literal["tanh", "relu"] = "tanh"):
    """Vanilla (Elman) RNN stack, ``nn.RNN`` with batch_first."""
    return _recurrent("RNN", "rnn", input, hidden, layers, bidirectional, nonlinearity=nonlinearity)


@register("lstm", family="rnn", default_input=lambda o: _sequence(o["input"]))
def lstm(input: int = 512, hidden: int = 512, layers: int = 1, bidirectional: bool = False, proj_size: int = 0):
    """LSTM stack, ``nn.LSTM`` with batch_first (``proj_size`` > 0 for a projected LSTM)."""
    _positive("lstm", input=input, hidden=hidden, layers=layers)
    require(0 <= proj_size < hidden, f"option proj_size={proj_size} of lstm: must be in [0, hidden)")
    return _recurrent("LSTM", "lstm", input, hidden, layers, bidirectional, proj_size=proj_size)


@register("gru", family="rnn", default_input=lambda o: _sequence(o["input"]))
def gru(input: int = 512, hidden: int = 512, layers: int = 1, bidirectional: bool = False):
    """GRU stack, ``nn.GRU`` with batch_first."""
    return _recurrent("GRU", "gru", input, hidden, layers, bidirectional)


def _check_attention(model: str, d_model: int, heads: int) -> None:
    _positive(model, d_model=d_model, heads=heads)
    require(d_model % heads == 0, f"{model}: d_model={d_model} is not divisible by heads={heads}")


AttentionKind = Literal["sdpa", "naive", "torch"]


@register("transformer", family="transformer", default_input=lambda o: _sequence(o["d_model"]))
def transformer(d_model: int = 512, heads: int = 8, ff: int = 2048, layers: int = 6, dropout: float = 0.1,
                attention: AttentionKind = "sdpa", norm_first: bool = False):
    """Transformer encoder stack (base model of Vaswani et al.); attention: sdpa (fused), naive (explicit T×T), torch (nn.TransformerEncoderLayer)."""
    from torch import nn

    from archbench.models.layers import Encoder, EncoderLayer

    _check_attention("transformer", d_model, heads)
    _positive("transformer", ff=ff, layers=layers)
    require(0.0 <= dropout < 1.0, f"option dropout={dropout} of transformer: must be in [0, 1)")
    if attention == "torch":
        layer = nn.TransformerEncoderLayer(d_model, heads, ff, dropout, batch_first=True, norm_first=norm_first)
        return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
    fused = attention == "sdpa"
    return Encoder([EncoderLayer(d_model, heads, ff, dropout, norm_first, fused) for _ in range(layers)])


@register("attention", family="transformer", default_input=lambda o: _sequence(o["d_model"]))
def attention(d_model: int = 512, heads: int = 8, attention: AttentionKind = "sdpa"):
    """One multi-head self-attention block (projections included); attention as for transformer."""
    from archbench.models.layers import SelfAttention, TorchSelfAttention

    _check_attention("attention", d_model, heads)
    if attention == "torch":
        return TorchSelfAttention(d_model, heads)
    return SelfAttention(d_model, heads, fused=attention == "sdpa")


@register("lenet5", family="cnn", default_input=lambda o: _image(1, 32, 32))
def lenet5(classes: int = 10):
    """LeNet-5 (LeCun et al. 1998): two 5×5 conv + avg-pool stages, then 120-84-classes dense layers."""
    from torch import nn

    _positive("lenet5", classes=classes)
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, classes),
    )


@register("unet", family="cnn", default_input=lambda o: _image(o["in_channels"], 256, 256))
def unet(in_channels: int = 1, classes: int = 2, base: int = 64, depth: int = 4, skips: bool = True):
    """U-Net with padded convolutions; skips=false removes the concatenated encoder features."""
    from archbench.models.layers import UNet

    _positive("unet", in_channels=in_channels, classes=classes, base=base, depth=depth)
    return UNet(in_channels, classes, base, depth, skips)


@register("inception-module", family="cnn", default_input=lambda o: _image(o["in_channels"], 28, 28))
def inception_module(in_channels: int = 192, reduce: bool = True, c1: int = 64, c3r: int = 96, c3: int = 128,
                     c5r: int = 16, c5: int = 32, pool_proj: int = 32):
    """GoogLeNet's inception (3a) module; reduce=false is the naive version without 1×1 reductions."""
    from archbench.models.layers import InceptionModule

    _positive("inception-module", in_channels=in_channels, c1=c1, c3r=c3r, c3=c3, c5r=c5r, c5=c5, pool_proj=pool_proj)
    return InceptionModule(in_channels, c1, c3r, c3, c5r, c5, pool_proj, reduce)


@register("dwsep-conv", family="cnn", default_input=lambda o: _image(o["in_channels"], 112, 112))
def dwsep_conv(in_channels: int = 32, out_channels: int = 64, kernel: int = 3, stride: int = 1,
               separable: bool = True, bias: bool = False):
    """A K×K convolution: depthwise + 1×1 pointwise when separable, else one standard conv."""
    from torch import nn

    _positive("dwsep-conv", in_channels=in_channels, out_channels=out_channels, kernel=kernel, stride=stride)
    pad = kernel // 2
    if not separable:
        return nn.Conv2d(in_channels, out_channels, kernel, stride, pad, bias=bias)
    return nn.Sequential(
        nn.Conv2d(in_channels, in_channels, kernel, stride, pad, groups=in_channels, bias=bias),
        nn.Conv2d(in_channels, out_channels, 1, bias=bias),
    )


@register("gan-generator", family="gan", default_input=lambda o: InputSpec("vector", (o["latent"],)))
def gan_generator(arch: Literal["mlp", "dcgan"] = "mlp", latent: int = 100, hidden: int = 256, outputs: int = 784,
                  channels: int = 3, features: int = 64):
    """GAN generator: mlp = Linear(latent,hidden)-ReLU-Linear(hidden,outputs)-Tanh; dcgan = DCGAN's 64×64 generator."""
    from torch import nn

    from archbench.models.layers import LatentToImage

    _positive("gan-generator", latent=latent, hidden=hidden, outputs=outputs, channels=channels, features=features)
    if arch == "mlp":
        return nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, outputs), nn.Tanh())
    f = features
    widths = [latent, 8 * f, 4 * f, 2 * f, f]
    layers: list[nn.Module] = [LatentToImage()]
    for i, (cin, cout) in enumerate(zip(widths, widths[1:])):
        stride, pad = (1, 0) if i == 0 else (2, 1)
        layers += [nn.ConvTranspose2d(cin, cout, 4, stride, pad, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]
    layers += [nn.ConvTranspose2d(f, channels, 4, 2, 1, bias=False), nn.Tanh()]
    return nn.Sequential(*layers)


def _discriminator_input(o: dict) -> InputSpec:
    if o["arch"] == "mlp":
        return InputSpec("vector", (o["inputs"],))
    return _image(o["channels"], 64, 64)


@register("gan-discriminator", family="gan", default_input=_discriminator_input)
def gan_discriminator(arch: Literal["mlp", "dcgan"] = "mlp", inputs: int = 784, hidden: int = 256,
                      channels: int = 3, features: int = 64):
    """GAN discriminator: mlp = Linear(inputs,hidden)-LeakyReLU-Linear(hidden,1)-Sigmoid; dcgan = DCGAN's 64×64 one."""
    from torch import nn

    _positive("gan-discriminator", inputs=inputs, hidden=hidden, channels=channels, features=features)
    if arch == "mlp":
        return nn.Sequential(nn.Linear(inputs, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1), nn.Sigmoid())
    f = features
    layers: list[nn.Module] = [nn.Conv2d(channels, f, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
    for cin, cout in ((f, 2 * f), (2 * f, 4 * f), (4 * f, 8 * f)):
        layers += [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, True)]
    layers += [nn.Conv2d(8 * f, 1, 4, 1, 0, bias=False), nn.Sigmoid(), nn.Flatten()]
    return nn.Sequential(*layers)


@register("autoencoder", family="autoencoder", default_input=lambda o: InputSpec("vector", (o["inputs"],)))
def autoencoder(inputs: int = 784, code: int = 64):
    """Dense autoencoder: Linear(inputs,code)-ReLU encoder, Linear(code,inputs)-Sigmoid decoder."""
    from torch import nn

    _positive("autoencoder", inputs=inputs, code=code)
    return nn.Sequential(nn.Linear(inputs, code), nn.ReLU(), nn.Linear(code, inputs), nn.Sigmoid())
