"""PyTorch twins of every architecture of apsweep's zoo, with the same state_dict keys, shapes
and forward. Where torchvision has the model in the same layout (ResNet-18/50, ViT) the twin is
torchvision's own class, so a torchvision `state_dict()` saved as safetensors loads into apsweep
with no renaming; the CIFAR-style AlexNet and VGG (3x3 AlexNet stem, 512-wide VGG classifier, no
7x7 average pool) keep torchvision's key names (features.N, classifier.N) with their own shapes.

Used by bench_torch.py (side-by-side speed), gen_fixtures.py and gen_zoo_fixtures.py (golden
numbers for the tests).
"""
import torch
import torch.nn as nn


def lenet5(classes=10, channels=1, width=1.0, size=28):
    c1, c2 = _w(6, width), _w(16, width)
    side = (size // 2 - 4) // 2
    m = nn.Module()
    m.features = nn.Sequential(
        nn.Conv2d(channels, c1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 5), nn.ReLU(), nn.MaxPool2d(2))
    m.classifier = nn.Sequential(
        nn.Linear(c2 * side * side, _w(120, width)), nn.ReLU(), nn.Linear(_w(120, width), _w(84, width)), nn.ReLU(),
        nn.Linear(_w(84, width), classes))
    return _Seq(m)


def _w(c, width):
    return max(1, int(c * width + 0.5))   # Swift's .rounded(): half away from zero


def vgg_small(classes=10, channels=1, width=1.0, size=28):
    layers, c = [], channels
    for w in (_w(32, width), _w(64, width), _w(128, width)):
        for _ in range(2):
            layers += [nn.Conv2d(c, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU()]
            c = w
        layers.append(nn.MaxPool2d(2))
    m = nn.Module()
    m.features = nn.Sequential(*layers)
    side = size // 8
    m.classifier = nn.Sequential(nn.Linear(c * side * side, _w(256, width)), nn.ReLU(), nn.Linear(_w(256, width), classes))
    return _Seq(m)


class MLP(nn.Module):
    """fc1 -> ReLU -> fc2 -> ReLU -> fc3 on the flattened image."""

    def __init__(self, inputs, classes=10, width=1.0):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(inputs, _w(256, width)), nn.Linear(_w(256, width), _w(128, width))
        self.fc3 = nn.Linear(_w(128, width), classes)

    def forward(self, x):
        x = torch.flatten(x, 1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def mlp(classes=10, channels=1, width=1.0, size=28):
    return MLP(channels * size * size, classes, width)


def alexnet(classes=10, channels=3, width=1.0, size=32, dropout=0.0):
    """apsweep's CIFAR-style AlexNet: five 3x3 convolutions (the first with stride 2), three max
    pools, torchvision's classifier layout (Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear)."""
    c1, c2, c3, c4, c5 = (_w(v, width) for v in (64, 192, 384, 256, 256))
    side = (size + 1) // 2 // 2 // 2 // 2
    m = nn.Module()
    m.features = nn.Sequential(
        nn.Conv2d(channels, c1, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(),
        nn.Conv2d(c3, c4, 3, padding=1), nn.ReLU(),
        nn.Conv2d(c4, c5, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    hidden = _w(4096, width)
    m.classifier = nn.Sequential(
        nn.Dropout(dropout), nn.Linear(c5 * side * side, hidden), nn.ReLU(),
        nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, classes))
    return _Seq(m)


VGG_CONFIGS = {"vgg11": [64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0],
               "vgg16": [64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0]}


def vgg(config, batch_norm, classes=10, channels=3, width=1.0, size=32, dropout=0.0):
    """apsweep's CIFAR-style VGG: torchvision's features (a pool that would shrink a 1-pixel map
    is left out), classifier 512 -> 512 -> classes laid out as torchvision's (last layer classifier.6)."""
    layers, c, side = [], channels, size
    for v in config:
        if v == 0:
            if side >= 2:
                layers.append(nn.MaxPool2d(2))
                side //= 2
        else:
            layers.append(nn.Conv2d(c, _w(v, width), 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(_w(v, width)))
            layers.append(nn.ReLU())
            c = _w(v, width)
    hidden = _w(512, width)
    m = nn.Module()
    m.features = nn.Sequential(*layers)
    m.classifier = nn.Sequential(nn.Linear(c * side * side, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, classes))
    return _Seq(m)


class ResNet20(nn.Module):
    """He et al.'s CIFAR ResNet-20 with torchvision's BasicBlock (1x1 projection shortcuts) and names."""

    def __init__(self, classes=10, channels=3, width=1.0):
        super().__init__()
        from torchvision.models.resnet import BasicBlock
        c = _w(16, width)
        self.conv1 = nn.Conv2d(channels, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU()
        stages = []
        for stage, planes in enumerate((16, 32, 64)):
            blocks = []
            for b in range(3):
                stride = 2 if stage > 0 and b == 0 else 1
                p = _w(planes, width)
                down = None
                if stride != 1 or c != p:
                    down = nn.Sequential(nn.Conv2d(c, p, 1, stride=stride, bias=False), nn.BatchNorm2d(p))
                blocks.append(BasicBlock(c, p, stride=stride, downsample=down))
                c = p
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def twin(arch, classes=10, channels=3, size=32, width=1.0, patch=8, dim=64, depth=2, heads=4, mlp_dim=None):
    """The PyTorch twin of apsweep's `arch` at this input (C x size x size)."""
    import torchvision.models as tvm
    if arch == "mlp":
        return mlp(classes, channels, width, size)
    if arch == "lenet5":
        return lenet5(classes, channels, width, size)
    if arch == "vgg-small":
        return vgg_small(classes, channels, width, size)
    if arch == "alexnet":
        return alexnet(classes, channels, width, size)
    if arch in ("vgg11", "vgg11-bn", "vgg16", "vgg16-bn"):
        return vgg(VGG_CONFIGS[arch[:5]], arch.endswith("-bn"), classes, channels, width, size)
    if arch == "resnet20":
        return ResNet20(classes, channels, width)
    if width != 1.0:
        raise ValueError(arch + ": torchvision's model has no width multiplier")
    if arch == "resnet18":
        return tvm.resnet18(num_classes=classes)
    if arch == "resnet50":
        return tvm.resnet50(num_classes=classes)
    if arch == "vit":
        return tvm.vision_transformer.VisionTransformer(image_size=size, patch_size=patch, num_layers=depth, num_heads=heads,
                                                        hidden_dim=dim, mlp_dim=mlp_dim or 4 * dim, num_classes=classes)
    raise ValueError("no twin for " + arch)


class _Seq(nn.Module):
    """features → flatten → classifier, keeping the keys features.* and classifier.*."""

    def __init__(self, inner):
        super().__init__()
        self.features = inner.features
        self.classifier = inner.classifier

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


