"""ComfyUI entry point of the InstantRetouch node pack.

ComfyUI runs this file with ``spec_from_file_location`` and does not put the pack folder on
``sys.path``, so every in-pack import is relative. The node classes are imported lazily
inside :func:`comfy_entrypoint` so that this package can be imported (by tests, by tools)
without a ComfyUI tree on ``sys.path``.

``WEB_DIRECTORY`` holds the pack's frontend extension (ComfyUI serves its .js files under
``/extensions/<pack folder>/``): it hides the inputs the schema marks advanced until asked.
"""

WEB_DIRECTORY = "./web"


async def comfy_entrypoint():
    """Return the pack's ``ComfyExtension`` (ComfyUI V3 node registration)."""
    from .nodes.comfy_nodes import RetouchExtension
    from .retouch_core.engine.slicing import load_cpu_kernel_in_background

    load_cpu_kernel_in_background()  # so the first prompt does not wait for numba
    return RetouchExtension()
