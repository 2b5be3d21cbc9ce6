"""Model preparation, run once by ``citeline models prepare``: never imported by serving.

Its heavy stack (torch, transformers, optimum, nncf, gguf and the model-part wheels) is the
``prepare`` extra; the service needs only OpenVINO and the prepared directories it writes
(``service.generation`` reads them through ``is_ready``/``prepared_model_dir``).
"""

from citeline.service.preparation.generator import PreparedModel, assemble_gguf, prepare_generator

__all__ = ["PreparedModel", "assemble_gguf", "prepare_generator"]
