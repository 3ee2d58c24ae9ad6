"""ComfyUI wrappers of the InstantRetouch pack.

``logic`` (and the other modules without ``comfy`` imports) hold what the nodes do and are
tested without ComfyUI; ``comfy_nodes`` holds the V3 node classes and imports ComfyUI.
"""
