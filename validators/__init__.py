"""validate_destination: the guide's checklist plus the traps it misses, one finding per check; validate_source."""

from bizon_forge.findings import Result
from bizon_forge.validators.report import ValidationResult


def validate_destination(
    ws, name, level="fast", fix=False, verbose=False, progress=None, use_cache=True
) -> ValidationResult:
    """See validators/validation.py; imported lazily so the server starts without ast/yaml/ruff work."""
    from bizon_forge.validators.validation import validate_destination as run

    return run(ws, name, level=level, fix=fix, verbose=verbose, progress=progress, use_cache=use_cache)


def validate_source(ws, name, **options) -> Result:  # a ValidationResult, or level live's LiveReport
    """See validators/source_validation.py; imported lazily so the server starts without yaml and the checks."""
    from bizon_forge.validators.source_validation import validate_source as run

    return run(ws, name, **options)


def after_full(ws, name: str, live: str) -> str:
    """See validators/source_validation.py (the `next` of a source's green full); imported lazily, as above."""
    from bizon_forge.validators.source_validation import after_full as run

    return run(ws, name, live)
