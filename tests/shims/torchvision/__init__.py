"""TEST SHIM -- NOT the real torchvision.

This minimal package stands in for ``torchvision`` ONLY on the PYTHONPATH of
the sd-scripts trainer when it is run on this CPU-only development machine.
The torchvision wheel from PyPI does not work with the CPU torch wheel
installed here (``operator torchvision::nms does not exist``), while
sd-scripts imports ``torchvision.transforms`` at import time
(library/train_util.py, library/utils.py).

It implements, on top of torch / numpy / PIL, just what sd-scripts uses for
LoRA training with default settings:

* ``transforms.Compose``, ``transforms.ToTensor``, ``transforms.Normalize``
  (the ``IMAGE_TRANSFORMS`` pipeline of library/train_util.py),
* ``transforms.functional.pil_to_tensor`` / ``to_tensor`` / ``normalize`` /
  ``gaussian_blur`` / ``resize`` and ``transforms.InterpolationMode``.

Never install it into a real environment and never put it on the path of the
orchestrator itself. See tools/README-sd-scripts-cpu.md.
"""

from . import transforms  # noqa: F401

__version__ = "0.0.0+test-shim"
IS_TEST_SHIM = True

__all__ = ["transforms", "__version__", "IS_TEST_SHIM"]
