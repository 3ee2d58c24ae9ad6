"""InstantRetouch core: instruction-guided photo retouching in bilateral space.

Pure PyTorch (plus kornia and numba); never imports ComfyUI. Internal imports are relative so
the package also works when vendored inside the ComfyUI pack folder.
"""
