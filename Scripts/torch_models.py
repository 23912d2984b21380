"""PyTorch twins of apsweep's LeNet-5 and vgg-small, with the same state_dict keys.

Used by bench_torch.py (side-by-side speed) and gen_fixtures.py (golden numbers for the tests).
"""
import torch
import torch.nn as nn


def lenet5(classes=10, channels=1):
    m = nn.Module()
    m.features = nn.Sequential(
        nn.Conv2d(channels, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2))
    m.classifier = nn.Sequential(
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, classes))
    return _Seq(m)


def _w(c, width):
    return max(1, int(c * width + 0.5))   # Swift's .rounded(): half away from zero


def vgg_small(classes=10, channels=1, width=1.0):
    layers, c = [], channels
    for w in (_w(32, width), _w(64, width), _w(128, width)):
        for _ in range(2):
            layers += [nn.Conv2d(c, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU()]
            c = w
        layers.append(nn.MaxPool2d(2))
    m = nn.Module()
    m.features = nn.Sequential(*layers)
    m.classifier = nn.Sequential(nn.Linear(c * 3 * 3, _w(256, width)), nn.ReLU(), nn.Linear(_w(256, width), classes))
    return _Seq(m)


class _Seq(nn.Module):
    """features → flatten → classifier, keeping the keys features.* and classifier.*."""

    def __init__(self, inner):
        super().__init__()
        self.features = inner.features
        self.classifier = inner.classifier

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


MODELS = {"lenet5": lenet5, "vgg-small": vgg_small}
