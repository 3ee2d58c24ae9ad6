"""InstantRetouch core: instruction-guided photo retouching in bilateral space.

Pure PyTorch (plus kornia and numba); never imports ComfyUI. Internal imports are relative so
the package also works when vendored inside the ComfyUI pack folder.
"""

# The oldest torch the library and its kornia range (requirements.txt: kornia<0.9) work with.
# Nothing installs torch for you: pip keeps the one ComfyUI has (tests/test_requirements.py).
MIN_TORCH = (2, 0)
