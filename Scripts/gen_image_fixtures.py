"""Small JPEG and PNG files and the pixels PIL decodes from them (as torchvision's loader does:
`Image.open(f).convert("RGB")`, or `convert("L")` for grey), for the image-folder tests.

  .venv-torch/bin/python Scripts/gen_image_fixtures.py     # needs Pillow (comes with torchvision)

writes Tests/DatasetsTests/Fixtures/images/*.{png,jpg} and pixels.json.
"""
import json
import os
import random

from PIL import Image

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "DatasetsTests", "Fixtures", "images")


def noise(mode, w, h, seed):
    rnd = random.Random(seed)
    bands = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    # Smooth-ish content (JPEG-like) plus noise, so JPEG's chroma subsampling matters.
    data = bytes(min(255, max(0, (x * 17 + y * 29 + b * 60) % 256 + rnd.randint(-20, 20)))
                 for y in range(h) for x in range(w) for b in range(bands))
    return Image.frombytes(mode, (w, h), data)


def main():
    os.makedirs(OUT, exist_ok=True)
    files = {
        "rgb.png": noise("RGB", 7, 5, 1),
        "gray.png": noise("L", 6, 4, 2),
        "rgba.png": noise("RGBA", 5, 5, 3),
        "photo.jpg": noise("RGB", 19, 13, 4),
        "gray.jpg": noise("L", 8, 8, 5),
    }
    pixels = {}
    for name, im in files.items():
        path = os.path.join(OUT, name)
        if name.endswith(".jpg"):
            im.save(path, quality=90)
        else:
            im.save(path)
        with Image.open(path) as f:
            rgb, grey = f.convert("RGB"), f.convert("L")
            pixels[name] = {"width": f.width, "height": f.height, "rgb": list(rgb.tobytes()), "gray": list(grey.tobytes())}
    with open(os.path.join(OUT, "pixels.json"), "w") as f:
        json.dump(pixels, f, sort_keys=True)
    print("wrote", ", ".join(sorted(files)), "and pixels.json")


if __name__ == "__main__":
    main()
